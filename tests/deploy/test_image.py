"""The container image (issue 26, item 1), checked without a container runtime: the Dockerfile's points, and its
build stage's commands run as written in a fresh virtualenv, whose console script then serves, answers the
image's HEALTHCHECK and stops on its STOPSIGNAL."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import subprocess
import sys
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from shadowproxy.config import load
from tests.deploy.dockerfile import Stage, copy_context, exec_form, stages
from tests.support import REPO, Process, free_port, sdk_server_command, until

DOCKERFILE = REPO / "Dockerfile"
VENV = "/opt/shadowproxy"
CONFIG = "/etc/shadowproxy/shadowproxy.yaml"
COMPILERS = re.compile(r"\b(build-essential|gcc|g\+\+|clang|make|cc)\b")


@pytest.fixture(scope="module")
def build() -> Stage:
    return stages(DOCKERFILE.read_text())[0]


@pytest.fixture(scope="module")
def final() -> Stage:
    return stages(DOCKERFILE.read_text())[-1]


def test_the_image_is_built_in_two_stages_on_a_slim_python(build: Stage, final: Stage) -> None:
    every = stages(DOCKERFILE.read_text())
    assert len(every) == 2 and build.name == "build"
    required = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    for stage in every:
        assert re.fullmatch(r"python:3\.\d+-slim", stage.base), stage.base
        assert int(stage.base.split(".")[1].split("-")[0]) >= int(required.split(".")[1])
    # The final stage takes the virtualenv from the build stage and nothing from the build context.
    assert final.all("COPY") == [f"--from=build {VENV} {VENV}"]


def test_the_final_stage_has_no_compiler_and_runs_unprivileged(build: Stage, final: Stage) -> None:
    assert any(COMPILERS.search(run) for run in build.all("RUN")), "the build stage is where compilers belong"
    assert not [run for run in final.all("RUN") if COMPILERS.search(run) or "apt-get" in run]
    user = final.one("USER").split(":")[0]
    assert user not in ("root", "0") and int(user) >= 1000
    assert any(f"--uid {user}" in run for run in final.all("RUN"))


def test_it_runs_the_console_script_with_a_mounted_config(final: Stage) -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert exec_form(final.one("ENTRYPOINT")) == ["shadowproxy"] and "shadowproxy" in scripts
    assert exec_form(final.one("CMD")) == ["run", "--config", CONFIG]
    assert final.one("STOPSIGNAL") == "SIGTERM"
    assert final.env()["PATH"].startswith(f"{VENV}/bin:")


def test_its_variables_are_settings_the_config_knows(final: Stage) -> None:
    variables = {name: value for name, value in final.env().items() if name.startswith("SHADOWPROXY_")}
    assert variables
    config = load(env=variables)
    assert (config.host, config.port) == ("0.0.0.0", 8765)
    assert final.one("EXPOSE") == str(config.port)


def test_the_healthcheck_asks_healthz(final: Stage) -> None:
    options, _, command = final.one("HEALTHCHECK").partition(" CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv = exec_form(command)
    assert argv[0] == "python" and "/healthz" in argv[-1]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def installed(tmp_path_factory: pytest.TempPathFactory, build: Stage) -> AsyncIterator[Path]:
    """The build stage's RUN commands, with the image's paths replaced by temporary ones; the apt-get step is left
    out, since it needs the image's root (the fresh virtualenv then uses the wheels, as on a usual platform)."""
    root = tmp_path_factory.mktemp("image")
    source, venv = root / "src", root / "venv"
    source.mkdir()
    top = copy_context(REPO, source)
    assert {"pyproject.toml", "README.md", "shadowproxy", "rules", "stores", "interceptors"} <= set(top)
    assert not {".git", ".venv", "tests"} & set(top), top
    env = dict(os.environ, **build.env())
    # The image keeps no pip cache (smaller layers); here the cache the suite's own install filled spares the
    # downloads, and the commands are otherwise the same.
    env.pop("PIP_NO_CACHE_DIR", None)
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if not p.startswith(sys.prefix))
    for run in build.all("RUN"):
        if run.startswith("apt-get"):
            continue
        command = run.replace(VENV, str(venv)).replace(" /src", f" {source}")
        command = re.sub(r"^python ", f"{shlex.quote(sys._base_executable)} ", command)
        done = await asyncio.to_thread(subprocess.run, command, shell=True, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"RUN {run}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    yield venv


@pytest.mark.timeout(900)  # its fixture installs the project into a fresh venv: minutes on a slow machine
@pytest.mark.asyncio(loop_scope="module")
async def test_the_build_commands_make_a_venv_that_serves_and_stops(
    installed: Path, final: Stage, tmp_path: Path
) -> None:
    config = tmp_path / "shadowproxy.yaml"
    config.write_text(f"upstreams:\n  default:\n    command: {shlex.join(sdk_server_command())!r}\n")
    port = free_port()
    env = {"PATH": final.env()["PATH"].replace(VENV, str(installed)).replace("$PATH", os.environ["PATH"])}
    env.update(HOME=str(tmp_path), **{k: v for k, v in final.env().items() if k != "PATH"})
    # Only loopback here; the image listens on every interface.
    env.update(SHADOWPROXY_HOST="127.0.0.1", SHADOWPROXY_PORT=str(port))
    argv = [str(installed / "bin" / exec_form(final.one("ENTRYPOINT"))[0])]
    argv += [part.replace(CONFIG, str(config)) for part in exec_form(final.one("CMD"))]
    proxy = Process(tmp_path / "proxy.log")
    await proxy.spawn(*argv, env=env, cwd=tmp_path)
    try:
        await until(lambda: f":{port}" in proxy.log() and "serving" in proxy.log(), "the image's proxy to listen")
        # The proxy is the installed copy, not this checkout.
        assert str(REPO / "shadowproxy") not in proxy.log()
        check = exec_form(final.one("HEALTHCHECK").partition(" CMD ")[2])
        check[0] = str(installed / "bin" / check[0])
        done = await asyncio.to_thread(subprocess.run, check, env=env, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        proxy.signal(getattr(signal, final.one("STOPSIGNAL")))
        assert await proxy.wait() == 0, proxy.log()
    finally:
        await proxy.stop()
