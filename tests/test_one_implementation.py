"""One implementation each of what was written several times: the token bucket, URL masking and write flow control
(issue 19, item 6)."""

from __future__ import annotations

import asyncio
import os

import pytest

from shadowproxy.config import Config, shown
from shadowproxy.core.flow import WriteFlow
from shadowproxy.core.tokenbucket import TokenBucket
from shadowproxy.core.urls import mask_url, origin
from shadowproxy.stores.url import parse_store_url


def test_a_bucket_gives_its_burst_then_its_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3.0, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.25) == pytest.approx(0.25)
    assert bucket.take(0.5) == 0.0
    assert not bucket.full(1.9) and bucket.full(2.0)
    assert bucket.take_up_to(5, 100.0) == 3 and bucket.take_up_to(5, 100.0) == 0
    assert bucket.take_up_to(5, 101.0) == 2


def test_an_empty_rate_never_refills() -> None:
    bucket = TokenBucket(rate=0.0, burst=1.0, now=0.0)
    assert bucket.take(0.0) == 0.0 and bucket.take(1e9) == float("inf")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://u:p@[::1]:8080/mcp?k=1", "http://u:********@[::1]:8080/mcp?********"),
        ("redis://h/0?password=x", "redis://h/0?********"),
        ("http://h/mcp", "http://h/mcp"),
        ("https://:s3cret@h.example/mcp#frag", "https://:********@h.example/mcp#frag"),
    ],
)
def test_a_masked_url_keeps_no_password_and_no_query(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_origin_is_scheme_host_and_port() -> None:
    assert origin("https://u:p@[::1]:8443/mcp/sk-123?k=1") == "https://[::1]:8443"
    assert origin("http://127.0.0.1:9/x") == "http://127.0.0.1:9"


def test_the_store_url_the_config_and_errors_mask_alike() -> None:
    url = "redis://admin:s3cret@localhost:6379/0?prefix=p:"
    assert parse_store_url(url).display == "redis://admin:***@localhost:6379/0?prefix=p:"
    assert shown(Config(store=url))["store"] == "redis://admin:********@localhost:6379/0?********"


class Sink(WriteFlow, asyncio.Protocol):
    pass


async def test_write_flow_waits_while_the_reader_does_not_read() -> None:
    loop = asyncio.get_running_loop()
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    transport, sink = await loop.connect_write_pipe(Sink, os.fdopen(write_fd, "wb", buffering=0))
    try:
        await sink.drain()  # not paused: at once
        transport.write(b"x" * (4 * 1024 * 1024))
        assert sink.paused is not None
        drained = loop.create_task(sink.drain())
        await asyncio.sleep(0.05)
        assert not drained.done()
        async with asyncio.timeout(30):
            while not drained.done():
                try:
                    os.read(read_fd, 1024 * 1024)
                except BlockingIOError:
                    await asyncio.sleep(0.01)
        assert sink.paused is None
    finally:
        transport.close()
        os.close(read_fd)
