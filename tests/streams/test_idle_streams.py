"""The idle streams harness (benchmarks/streams_load.py) on a small N: it runs end to end and its figures add up."""

from __future__ import annotations

from benchmarks.streams_load import TARGET_KB, growth, report, run

SESSIONS = 50


async def test_the_harness_reports_sane_figures() -> None:
    result = await run(SESSIONS)
    # The warm-up session is in the baseline; every other one is live when the streams are counted.
    assert result.baseline.sessions == 1
    assert result.after_sessions.sessions == result.after_streams.sessions == SESSIONS + 1
    # An idle session holds no task; an idle stream holds its connection's task(s) and nothing per message.
    assert -0.1 < result.tasks_per_session < 0.1
    assert 1 <= result.tasks_per_stream <= 2
    grown = dict(growth(result.after_sessions.census, result.after_streams.census))
    assert grown.get("RequestHandler.start") == SESSIONS, grown
    # Memory is read from /proc: positive, and per item within the target even with N this small.
    assert result.baseline.rss_kb > 0 and result.after_streams.rss_kb >= result.baseline.rss_kb
    assert 0 < result.kb_per_session < TARGET_KB
    assert result.kb_per_stream < TARGET_KB
    text = report(result)
    assert f"N = {SESSIONS}" in text and "memory per idle stream" in text
