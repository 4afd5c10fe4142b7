"""The per-principal secrets as two instances on one store see them (:class:`SecretBox`, on the memory store
both share here): what each keeps, what it reads again, and an older file imported once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from shadowproxy import config as configuration
from shadowproxy.stores.memory import MemoryStore
from shadowproxy.upstreams.secrets import SPACE, SecretBox, entry_key


def settings(folder: Path, key: bytes) -> configuration.Config:
    (folder / "key").write_bytes(key)
    raw = {
        "upstreams": {"keyed": {"url": "http://127.0.0.1:9/mcp", "credentials": {"per_principal": True}}},
        "credentials": {"key_file": str(folder / "key"), "secrets_file": str(folder / "secrets.json")},
    }
    return configuration.from_mapping(raw)


async def test_a_secret_is_stored_encrypted_and_read_by_another_instance(tmp_path: Path) -> None:
    key = Fernet.generate_key()
    credentials = settings(tmp_path, key).credentials
    assert credentials is not None
    store = MemoryStore()
    a, b = SecretBox(credentials, store), SecretBox(credentials, store)
    announced: list[tuple[str, str]] = []
    a.announce = lambda upstream, principal: announced.append((upstream, principal))

    assert await b.get("keyed", "alice") is None
    await a.set("keyed", "alice", "key-1")
    sealed = await store.entry(SPACE, entry_key("keyed", "alice"))
    assert sealed is not None and b"key-1" not in sealed and Fernet(key).decrypt(sealed) == b"key-1"
    assert await b.get("keyed", "alice") == "key-1", "an absent secret is never remembered"
    assert announced == [("keyed", "alice")]

    await a.set("keyed", "alice", "key-2")
    assert await b.get("keyed", "alice") == "key-1", "kept for a few seconds"
    b.forget("keyed", "alice")  # what the cluster's broadcast does
    assert await b.get("keyed", "alice") == "key-2"
    assert await a.delete("keyed", "alice") and not await a.delete("keyed", "alice")
    b.forget("keyed", "alice")
    assert await b.get("keyed", "alice") is None

    with pytest.raises(ValueError, match="without surrounding spaces"):
        await a.set("keyed", "alice", " padded ")
    await store.put_entry(SPACE, entry_key("keyed", "bob"), Fernet(Fernet.generate_key()).encrypt(b"x"))
    with pytest.raises(ValueError, match="encrypted with another key"):
        await a.get("keyed", "bob")


async def test_an_older_secrets_file_is_imported_once(tmp_path: Path) -> None:
    key = Fernet.generate_key()
    credentials = settings(tmp_path, key).credentials
    assert credentials is not None
    sealed = Fernet(key).encrypt(b"dave-key").decode()
    (tmp_path / "secrets.json").write_text(json.dumps({"keyed": {"dave": sealed, "erin": 5}}))
    store = MemoryStore()
    box = SecretBox(credentials, store)
    assert await box.import_file() == 1
    assert await box.get("keyed", "dave") == "dave-key"
    assert await box.delete("keyed", "dave")
    assert await SecretBox(credentials, store).import_file() == 0, "a deleted secret is not brought back"
    assert await SecretBox(credentials, store).get("keyed", "dave") is None
