"""``shadowproxy sessions`` against real SQLite files and a real Redis: tables, JSON, exit codes, errors."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from shadowproxy.cli.sessions import register
from shadowproxy.core.record import SessionRecord, SessionState
from shadowproxy.stores import open_store
from tests.redis_server import RedisServer

CLI = (
    "import argparse, sys; from shadowproxy.cli.sessions import register; "
    "p = argparse.ArgumentParser(prog='shadowproxy'); register(p.add_subparsers(dest='command', required=True)); "
    "a = p.parse_args(sys.argv[1:]); sys.exit(a.handler(a))"
)


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="shadowproxy")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return int(args.handler(args))


def populate(url: str, records: list[SessionRecord]) -> None:
    async def put() -> None:
        store = open_store(url)
        await store.put_many(records)
        await store.close()

    asyncio.run(put())


def sessions(count: int) -> list[SessionRecord]:
    now = time.time()
    return [
        SessionRecord(
            id=f"sess-{n}",
            upstream="fs",
            principal="alice" if n % 2 else None,
            client_info={"name": "claude-code", "version": "1.2"},
            created_at=now - 50 + n,
            last_seen=now - 5,
            messages=10 * n,
            state=SessionState.CLOSED if n == 2 else SessionState.ACTIVE,
            tags=["audited"],
        )
        for n in range(count)
    ]


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite://{tmp_path / 'sessions.db'}"
    populate(url, sessions(4))
    return url


def test_list_prints_a_table(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("sessions", "list", "--store", db) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:5] == ["ID", "STATE", "UPSTREAM", "PRINCIPAL", "CLIENT"]
    assert [line.split()[0] for line in lines[1:]] == ["sess-0", "sess-1", "sess-2", "sess-3"]
    assert "claude-code 1.2" in lines[2] and "alice" in lines[2]
    # Seen 5 s before the store was written; more by the time a loaded machine runs the command.
    seen = re.search(r"\b(\d+)s ago", lines[2])
    assert seen is not None and 5 <= int(seen.group(1)) < 60


def test_list_json_filters_and_pages(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("sessions", "list", "--store", db, "--state", "active", "--limit", "2", "--json") == 0
    first = json.loads(capsys.readouterr().out)
    assert [s["id"] for s in first["sessions"]] == ["sess-0", "sess-1"]
    assert first["sessions"][1]["messages"] == 10 and first["next_cursor"]
    assert run("sessions", "list", "--store", db, "--state", "active", "--json", "--cursor", first["next_cursor"]) == 0
    rest = json.loads(capsys.readouterr().out)
    assert [s["id"] for s in rest["sessions"]] == ["sess-3"] and rest["next_cursor"] is None


def test_show_and_kill(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("sessions", "show", "sess-1", "--store", db) == 0
    out = capsys.readouterr().out
    assert "principal" in out and "alice" in out and '["audited"]' in out
    assert run("sessions", "kill", "sess-1", "--store", db) == 0
    assert capsys.readouterr().out.strip() == "session sess-1 marked closed"
    assert run("sessions", "show", "sess-1", "--store", db, "--json") == 0
    assert json.loads(capsys.readouterr().out)["state"] == "closed"


def test_unknown_session_exits_1(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("sessions", "show", "nope", "--store", db) == 1
    assert run("sessions", "kill", "nope", "--store", db) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("no session 'nope' in the store") == 2


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ("memory://", "the memory store lives inside a running proxy"),
        ("sqlite:///definitely/not/here.db", "no SQLite store at /definitely/not/here.db"),
        ("ftp://x", "unknown scheme 'ftp'"),
        ("redis://127.0.0.1:1/0", "redis store redis://127.0.0.1:1/0: "),
    ],
)
def test_store_problems_exit_2_on_stderr(store: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("sessions", "list", "--store", store) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err


def test_bad_cursor_exits_2(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("sessions", "list", "--store", db, "--cursor", "garbage") == 2
    assert "invalid cursor 'garbage'" in capsys.readouterr().err


def test_store_comes_from_the_config_file(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "proxy.yaml"
    config.write_text(f"store: {db}\n")
    assert run("sessions", "list", "--config", str(config), "--json") == 0
    assert len(json.loads(capsys.readouterr().out)["sessions"]) == 4


def test_list_against_redis(redis_server: RedisServer, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"{redis_server.url}?prefix=cli-{uuid.uuid4().hex}:"
    populate(url, sessions(3))
    assert run("sessions", "list", "--store", url, "--principal", "alice", "--json") == 0
    assert [s["id"] for s in json.loads(capsys.readouterr().out)["sessions"]] == ["sess-1"]


def test_as_a_process(db: str, tmp_path: Path) -> None:
    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", CLI, *argv], capture_output=True, text=True, timeout=60, cwd=tmp_path
        )

    listed = cli("sessions", "list", "--store", db, "--json")
    assert listed.returncode == 0 and len(json.loads(listed.stdout)["sessions"]) == 4
    missing = cli("sessions", "show", "ghost", "--store", db)
    assert missing.returncode == 1 and "no session 'ghost'" in missing.stderr
    usage = cli("sessions", "list", "--limit", "0")
    assert usage.returncode == 2 and "must be at least 1" in usage.stderr
    helped = cli("sessions", "list", "--help")
    assert helped.returncode == 0 and "example:" in helped.stdout and "sqlite:///" in helped.stdout
