"""The peers: other MCP proxies from PyPI and npm, each installed in a folder of its own under a cache directory.

They pin other versions of ``mcp`` (and of everything else) than this project,
so none of them shares our environment: a PyPI peer gets its own virtual
environment, an npm peer its own ``npm install --prefix`` folder. The harness
installs each once, with the ordinary clients (``venv`` + ``pip``, ``npm``), at
the pinned version below, and reuses it on later runs. A peer that cannot be
installed is reported with the reason; the other rows still run.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path


class PeerUnavailable(Exception):
    """The peer could not be installed; its rows are reported as missing, with this reason."""


@dataclass(frozen=True)
class Package:
    """One peer as a package: where it comes from, at which version, and the command it installs."""

    name: str
    registry: str  # "pypi" or "npm"
    version: str
    command: str
    label: str = ""
    """A shorter name for its folder (the package name by default)."""

    @property
    def folder(self) -> str:
        return f"{self.label or self.name}-{'venv' if self.registry == 'pypi' else 'npm'}"


MCP_PROXY = Package("mcp-proxy", "pypi", "0.13.0", "mcp-proxy")
FASTMCP = Package("fastmcp", "pypi", "4.2.3", "python")
SUPERGATEWAY = Package("supergateway", "npm", "4.0.0", "supergateway")
CONTEXTFORGE = Package("mcp-contextforge-gateway", "pypi", "1.0.7.post20260921", "mcpgateway", "contextforge")
PACKAGES = (MCP_PROXY, FASTMCP, SUPERGATEWAY, CONTEXTFORGE)


@dataclass(frozen=True)
class Installed:
    """A peer ready to run: its folder, its command and the version that is really installed there."""

    package: Package
    root: Path
    command: Path
    version: str

    @property
    def bin(self) -> Path:
        return self.command.parent


def default_cache() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "shadowproxy-bench"


def default_venv() -> Path:
    """Where ``mcp-proxy`` is installed (kept for ``--peer-venv``)."""
    return default_cache() / MCP_PROXY.folder


def _command(package: Package, root: Path) -> Path:
    if package.registry == "npm":
        return root / "node_modules" / ".bin" / package.command
    return root / "bin" / package.command


def _version(package: Package, root: Path) -> str | None:
    """The installed version, read from the package's own metadata (None: not installed)."""
    if package.registry == "npm":
        manifest = root / "node_modules" / package.name / "package.json"
        return json.loads(manifest.read_text()).get("version") if manifest.exists() else None
    normalized = package.name.replace("-", "_").lower()
    for lib in root.glob("lib/python*/site-packages"):
        for info in lib.glob("*.dist-info"):
            stem = info.name.removesuffix(".dist-info")
            dist, _, version = stem.rpartition("-")
            if dist.lower() == normalized:
                return version
    return None


def _steps(package: Package, root: Path) -> list[list[str]]:
    if package.registry == "npm":
        npm = shutil.which("npm")
        if npm is None:
            raise PeerUnavailable("npm is not installed (Node 20 or later is needed)")
        return [[npm, "install", "--prefix", str(root), "--no-audit", "--no-fund", f"{package.name}@{package.version}"]]
    python = str(root / "bin" / "python")
    return [
        [sys.executable, "-m", "venv", str(root)],
        [python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        [python, "-m", "pip", "install", "--quiet", f"{package.name}=={package.version}"],
    ]


async def ensure(package: Package, root: Path | None = None, *, step_seconds: float = 600.0) -> Installed:
    """``package`` installed in ``root`` (its folder in the cache by default), installing it first if needed."""
    root = root or default_cache() / package.folder
    command = _command(package, root)
    version = _version(package, root)
    if command.exists() and version == package.version:
        return Installed(package, root, command, version)
    root.parent.mkdir(parents=True, exist_ok=True)
    if package.registry == "npm":
        root.mkdir(exist_ok=True)
    log = root.parent / f"{package.folder}-install.log"
    # A machine-wide pip constraint file must not bend a peer's own pins: the peer is what users install.
    env = {**os.environ, "PIP_CONSTRAINT": "", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    with log.open("wb") as out:
        for step in _steps(package, root):
            process = await asyncio.create_subprocess_exec(*step, stdout=out, stderr=out, env=env)
            try:
                async with asyncio.timeout(step_seconds):
                    code = await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
                raise PeerUnavailable(f"{' '.join(step)} took over {step_seconds:.0f} s; see {log}") from None
            if code != 0:
                raise PeerUnavailable(f"{' '.join(step)} exited with {code}; see {log}")
    version = _version(package, root)
    if not command.exists() or version is None:
        raise PeerUnavailable(f"{package.name} {package.version} installed no {package.command} in {root}")
    return Installed(package, root, command, version)


async def ensure_peer(venv: Path, *, step_seconds: float = 300.0) -> Path:
    """The path of the ``mcp-proxy`` command in ``venv``, installing it there first if needed."""
    return (await ensure(MCP_PROXY, venv, step_seconds=step_seconds)).command
