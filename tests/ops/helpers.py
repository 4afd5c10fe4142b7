"""Shared by the operations tests: scraping ``/metrics`` and calling the admin API of a running proxy."""

from __future__ import annotations

from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

TOKEN = "test-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(base: str) -> Samples:
    """Every sample on ``/metrics``, keyed by name and label set."""
    async with aiohttp.ClientSession() as client, client.get(f"{base}/metrics") as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when it is not there (a labelled counter appears on first use)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    return {dict(labels)[label] for sample, labels in samples if sample == name and label in dict(labels)}


async def admin(base: str, method: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """Call the admin API; the JSON body (or None) and the status."""
    async with (
        aiohttp.ClientSession() as client,
        client.request(method, f"{base}/_shadowproxy{path}", headers=AUTH if headers is None else headers) as response,
    ):
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, body
