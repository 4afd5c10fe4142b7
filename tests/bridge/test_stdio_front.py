"""The SDK client launching ``shadowproxy stdio`` in front of a server of the other protocol era, over stdio and
over Streamable HTTP: the stdio front bridges as the HTTP front does."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from tests.bridge.conftest import HANDSHAKE_ONLY, MODERN_ONLY, EraHttpServer
from tests.bridge.rounds import legacy_round, modern_cancel_and_listen, modern_round, resource_updates
from tests.bridge.test_modern_to_handshake import elicitation, sampling
from tests.support import REPO, child_env

pytestmark = pytest.mark.asyncio(loop_scope="package")


def stdio_proxy(*args: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=["-m", "shadowproxy", "stdio", *args], env=child_env(), cwd=str(REPO)
    )


async def test_a_2026_client_over_stdio_reaches_a_handshake_only_child(tmp_path: Path) -> None:
    async with Client(
        stdio_proxy("--", *HANDSHAKE_ONLY),
        mode="2026-07-28",
        sampling_callback=sampling,
        elicitation_callback=elicitation,
    ) as client:
        await modern_round(client)
        # Over stdio the client cancels with notifications/cancelled; the bridge cancels the pooled session's call.
        await modern_cancel_and_listen(client, tmp_path / "cancelled")


async def test_a_2026_client_over_stdio_reaches_a_handshake_only_http_server(
    old_http: EraHttpServer, tmp_path: Path
) -> None:
    async with Client(
        stdio_proxy("--upstream", old_http.url),
        mode="2026-07-28",
        sampling_callback=sampling,
        elicitation_callback=elicitation,
    ) as client:
        await modern_round(client)
        await modern_cancel_and_listen(client, tmp_path / "cancelled")


async def test_a_legacy_client_over_stdio_reaches_a_modern_only_child() -> None:
    updated, on_message = resource_updates()
    async with Client(
        stdio_proxy("--", *MODERN_ONLY), mode="legacy", sampling_callback=sampling, message_handler=on_message
    ) as client:
        await legacy_round(client, updated)


async def test_a_legacy_client_over_stdio_reaches_a_modern_only_http_server(new_http: EraHttpServer) -> None:
    updated, on_message = resource_updates()
    async with Client(
        stdio_proxy("--upstream", new_http.url), mode="legacy", sampling_callback=sampling, message_handler=on_message
    ) as client:
        await legacy_round(client, updated)
