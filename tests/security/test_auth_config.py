"""``auth`` in the config: every mistake is a ConfigError naming ``auth.<key>`` (and the file and line for a
tokens file), raised when the proxy starts; the CLI prints it and exits 2."""

from __future__ import annotations

import asyncio
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

from shadowproxy.config import Config, from_mapping
from shadowproxy.core.errors import ConfigError
from shadowproxy.fronts import auth
from tests.support import REPO, child_env, sdk_server_command

from .helpers import write_config
from .keys import ISSUER, SigningKey, sha256, write_jwks

DIGEST = sha256("t")


@pytest.mark.parametrize(
    ("raw", "key", "words"),
    [
        ({"tokenz": []}, "auth.tokenz", "unknown key"),
        ({"tokens": {"alice": DIGEST}}, "auth.tokens", "list"),
        ({"tokens": [{"name": "alice", "token": "t"}]}, "auth.tokens[0]", "never the token"),
        ({"tokens": [{"name": "alice", "sha256": "abc"}]}, "auth.tokens[0]", "64 hex digits"),
        ({"tokens": [{"name": "a b", "sha256": DIGEST}]}, "auth.tokens[0]", "without spaces"),
        ({"tokens": [{"name": "a", "sha256": DIGEST}, {"name": "a", "sha256": DIGEST}]}, "auth.tokens", "twice"),
        ({"resource": "ftp://x"}, "auth.resource", "http(s) URL"),
        ({"realm": ""}, "auth.realm", "non-empty"),
        ({"jwt": "yes"}, "auth.jwt", "mapping"),
        ({"jwt": {"issuer": ISSUER, "audience": "a"}}, "auth.jwt", "jwks_file or jwks_url"),
        ({"jwt": {"jwks_url": "https://i/jwks", "audience": "a"}}, "auth.jwt.issuer", "required"),
        ({"jwt": {"jwks_url": "https://i/jwks", "issuer": ISSUER}}, "auth.jwt.audience", "required"),
        ({"jwt": {"jwks_url": "file:///etc/jwks", "issuer": ISSUER, "audience": "a"}}, "auth.jwt.jwks_url", "URL"),
        ({"jwt": {"jwks_url": "https://i", "issuer": ISSUER, "audience": "a", "algorithms": []}}, "algorithms", ""),
        ({"jwt": {"jwks_url": "https://i", "issuer": ISSUER, "audience": "a", "leeway": -1}}, "auth.jwt.leeway", ""),
        ({"jwt": {"jwks_url": "https://i", "issuer": ISSUER, "audience": "a", "scopes": []}}, "auth.jwt.scopes", ""),
        ({"jwt": {"jwks_url": "https://i", "issuer": ISSUER, "audience": 5}}, "auth.jwt.audience", "string"),
        ({"realm": "x"}, "auth", "give tokens, tokens_file or jwt"),
        ({"realm": 'say "hi"', "tokens": [{"name": "a", "sha256": DIGEST}]}, "auth.realm", "printable"),
    ],
)
def test_config_errors_name_the_key(raw: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_mapping({"auth": raw}, source="sp.yaml")
    assert caught.value.key is not None and caught.value.key.endswith(key)
    assert words in caught.value.problem
    assert caught.value.source == "sp.yaml"


def test_no_auth_means_no_gate() -> None:
    assert from_mapping({"auth": {}}).auth is None
    assert auth.gate(Config()) is None


def test_tokens_file_errors_name_file_and_line(tmp_path: Path) -> None:
    file = tmp_path / "tokens.txt"
    file.write_text(f"# ok\nalice:{DIGEST}\n\nbob {DIGEST}\n")
    with pytest.raises(ConfigError) as caught:
        from_mapping({"auth": {"tokens_file": str(file)}})
    assert caught.value.source == f"{file}:4" and "name:sha256hex" in caught.value.problem
    file.write_text(f"alice:{DIGEST}\nbob:nothex\n")
    with pytest.raises(ConfigError) as caught:
        from_mapping({"auth": {"tokens_file": str(file)}})
    assert caught.value.source == f"{file}:2"
    with pytest.raises(ConfigError, match="cannot read") as caught:
        from_mapping({"auth": {"tokens_file": "missing.txt"}}, source=str(tmp_path / "sp.yaml"))
    assert caught.value.key == "auth.tokens_file" and str(tmp_path / "missing.txt") in str(caught.value)


def test_a_bad_jwks_file_is_refused_at_start(tmp_path: Path) -> None:
    settings = {"issuer": ISSUER, "audience": "a"}
    (tmp_path / "empty.json").write_text('{"keys": [{"kty": "nonsense"}]}')
    (tmp_path / "broken.json").write_text("{")
    for name in ("empty.json", "broken.json", "absent.json"):
        raw = {"jwt": {**settings, "jwks_file": name}}
        config = Config(auth=raw, source=str(tmp_path / "sp.yaml"))
        with pytest.raises(ConfigError) as caught:
            auth.gate(config)
        assert caught.value.key == "auth.jwt.jwks_file" and name in str(caught.value)
    write_jwks(tmp_path / "good.json", SigningKey("k"))
    config = Config(auth={"jwt": {**settings, "jwks_file": "good.json"}}, source=str(tmp_path / "sp.yaml"))
    assert auth.gate(config) is not None


async def test_the_cli_reports_auth_errors_and_exits_2(tmp_path: Path) -> None:
    config = write_config(tmp_path / "sp.yaml", {"tokens": [{"name": "alice", "sha256": "short"}]})
    upstream = shlex.join(sdk_server_command())
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shadowproxy", "run", "--port", "0", "--config", str(config), "--upstream", upstream,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=child_env(), cwd=REPO,
    )  # fmt: skip
    async with asyncio.timeout(60):
        _, stderr = await process.communicate()
    assert process.returncode == 2
    message = stderr.decode()
    assert str(config) in message and "[auth.tokens[0]]" in message and "64 hex digits" in message
