"""``shadowproxy wrap`` / ``unwrap`` on real client config files, and a wrapped server launched by the SDK client."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from shadowproxy.cli.wrap import BACKUP_SUFFIX, split_wrapped
from tests.support import REPO, child_env, sdk_server_command

CLIENT_CONFIG: dict[str, Any] = {
    "globalShortcut": "Ctrl+Space",
    "mcpServers": {
        "files": {"command": sdk_server_command()[0], "args": sdk_server_command()[1:], "env": {"TOKEN": "t"}},
        "remote": {"type": "http", "url": "https://mcp.example.com/mcp"},
        "with-headers": {"type": "http", "url": "https://mcp.example.com/mcp", "headers": {"X-Key": "k"}},
    },
}


def shadowproxy(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "shadowproxy", *args]
    return subprocess.run(command, capture_output=True, text=True, env=child_env(), cwd=REPO, timeout=60, check=False)


@pytest.fixture
def client_config(tmp_path: Path) -> Path:
    path = tmp_path / "claude_desktop_config.json"
    path.write_text(json.dumps(CLIENT_CONFIG, indent=2))
    return path


def test_round_trip(client_config: Path) -> None:
    original = client_config.read_bytes()
    done = shadowproxy("wrap", str(client_config), "--rules", "builtin:no-secrets")
    assert done.returncode == 0, done.stderr
    assert "wrapped 2 server(s): files, remote" in done.stdout
    assert "'with-headers' left as it is" in done.stderr
    assert Path(f"{client_config}{BACKUP_SUFFIX}").read_bytes() == original

    wrapped = json.loads(client_config.read_text())
    assert wrapped["globalShortcut"] == "Ctrl+Space"
    files = wrapped["mcpServers"]["files"]
    assert files["env"] == {"TOKEN": "t"}
    tail = ["stdio", "--rules", "builtin:no-secrets", "--", *sdk_server_command()]
    assert files["args"][-len(tail) :] == tail
    remote = wrapped["mcpServers"]["remote"]
    assert remote["args"][-2:] == ["--upstream", "https://mcp.example.com/mcp"] and "url" not in remote
    assert wrapped["mcpServers"]["with-headers"] == CLIENT_CONFIG["mcpServers"]["with-headers"]

    again = shadowproxy("wrap", str(client_config))
    assert again.returncode == 0 and "nothing to wrap" in again.stdout
    assert json.loads(client_config.read_text()) == wrapped, "wrapping twice changes nothing"

    done = shadowproxy("unwrap", str(client_config))
    assert done.returncode == 0 and "unwrapped 2 server(s)" in done.stdout
    assert json.loads(client_config.read_text()) == CLIENT_CONFIG


def test_unwrap_without_the_backup_rebuilds_from_the_command_line(client_config: Path) -> None:
    assert shadowproxy("wrap", str(client_config)).returncode == 0
    Path(f"{client_config}{BACKUP_SUFFIX}").unlink()
    config = json.loads(client_config.read_text())
    config["mcpServers"]["files"]["env"]["ADDED"] = "later"
    client_config.write_text(json.dumps(config))

    assert shadowproxy("unwrap", str(client_config)).returncode == 0
    servers = json.loads(client_config.read_text())["mcpServers"]
    files = servers["files"]
    assert [files["command"], *files["args"]] == sdk_server_command()
    assert files["env"] == {"TOKEN": "t", "ADDED": "later"}, "edits made after wrapping are kept"
    assert servers["remote"] == {"type": "http", "url": "https://mcp.example.com/mcp"}
    assert all(split_wrapped(entry) is None for entry in servers.values())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"mcpServers": {\n  "a": {"command": "x",}\n}}', ":2: not valid JSON"),
        ('{"servers_missing": {}}', 'no "mcpServers" object'),
        ("[1, 2]", "the top level must be a JSON object"),
    ],
)
def test_bad_files_are_named(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(content)
    done = shadowproxy("wrap", str(path))
    assert done.returncode == 2
    assert str(path) in done.stderr and message in done.stderr
    assert path.read_text() == content, "a file that cannot be wrapped is not touched"
    missing = shadowproxy("unwrap", str(tmp_path / "absent.json"))
    assert missing.returncode == 2 and "absent.json" in missing.stderr and "cannot read" in missing.stderr


def wrapped_entry(client_config: Path) -> dict[str, Any]:
    done = shadowproxy("wrap", str(client_config))
    assert done.returncode == 0, done.stderr
    return json.loads(client_config.read_text())["mcpServers"]["files"]  # type: ignore[no-any-return]


def parent_command(pid: int) -> str:
    """The command line of ``pid``'s parent process, from /proc."""
    parent = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
    return Path(f"/proc/{parent}/cmdline").read_bytes().replace(b"\0", b" ").decode()


async def test_the_wrapped_server_works_when_the_sdk_client_launches_it(client_config: Path) -> None:
    entry = await asyncio.to_thread(wrapped_entry, client_config)
    params = StdioServerParameters(
        command=entry["command"], args=entry["args"], env={**child_env(), **entry["env"]}, cwd=str(REPO)
    )
    async with Client(params, mode="legacy") as client:
        result = await client.call_tool("echo", {"text": "through the proxy"})
        assert result.content[0].text == "through the proxy"  # type: ignore[union-attr]
        pid = int((await client.call_tool("pid", {})).content[0].text)  # type: ignore[union-attr]
        launcher = await asyncio.to_thread(parent_command, pid)
        assert "shadowproxy stdio" in launcher, f"the server runs under the proxy, not {launcher!r}"
