"""The Kubernetes manifests (issue 26, item 2), checked without a cluster: every document parses, the probes, ports,
paths and names agree with each other, with the image, and with the config the pods would load (the ConfigMap's
file, the Deployment's variables and the Secret's files, read by the proxy's own loader)."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from shadowproxy.config import Config, load
from tests.deploy.dockerfile import exec_form, stages
from tests.support import REPO

MANIFESTS = REPO / "deploy" / "kubernetes"
# The oldest Kubernetes whose schemas kubernetes-validate ships, and its newest.
KUBERNETES = ["1.25.0", kubernetes_validate.latest_version()]
FINAL = stages((REPO / "Dockerfile").read_text())[-1]


def documents() -> list[dict[str, Any]]:
    found = []
    for file in sorted(MANIFESTS.glob("*.yaml")):
        if file.name != "kustomization.yaml":
            found += [doc for doc in yaml.safe_load_all(file.read_text()) if doc is not None]
    return found


DOCS = documents()


def the(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [doc for doc in DOCS if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


DEPLOYMENT = the("Deployment")
POD = DEPLOYMENT["spec"]["template"]
CONTAINER = POD["spec"]["containers"][0]
SECRET = the("Secret")


def mount(volume_kind: str) -> tuple[str, dict[str, Any]]:
    """The mount path of the pod's volume of ``volume_kind`` (configMap, secret), and that volume."""
    volumes = [volume for volume in POD["spec"]["volumes"] if volume_kind in volume]
    assert len(volumes) == 1
    paths = [m["mountPath"] for m in CONTAINER["volumeMounts"] if m["name"] == volumes[0]["name"]]
    assert len(paths) == 1
    return paths[0], volumes[0]


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    """The config a pod loads: the ConfigMap's file with the Secret's files in place, the image's and the
    Deployment's variables (values from the Secret resolved)."""
    folder = tmp_path_factory.mktemp("pod")
    config_dir, config_volume = mount("configMap")
    secret_dir, secret_volume = mount("secret")
    config_map = the("ConfigMap", config_volume["configMap"]["name"])
    assert secret_volume["secret"]["secretName"] == SECRET["metadata"]["name"]
    for key, value in SECRET["stringData"].items():
        (folder / key).write_text(value)
    config_path = exec_form(FINAL.one("CMD"))[-1]
    assert Path(config_path).parent == Path(config_dir)
    text = config_map["data"][Path(config_path).name].replace(secret_dir + "/", f"{folder}/")
    assert str(folder) in text, "the config reads no file of the Secret"
    (folder / "shadowproxy.yaml").write_text(text)
    env = {name: value for name, value in FINAL.env().items() if name.startswith("SHADOWPROXY_")}
    for variable in CONTAINER["env"]:
        reference = variable.get("valueFrom", {}).get("secretKeyRef")
        if reference is not None:
            assert reference["name"] == SECRET["metadata"]["name"]
            env[variable["name"]] = SECRET["stringData"][reference["key"]]
        else:
            env[variable["name"]] = variable["value"]
    return load(str(folder / "shadowproxy.yaml"), env=env)


def test_every_document_parses_and_is_listed_by_the_kustomization() -> None:
    listed = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(f.name for f in MANIFESTS.glob("*.yaml") if f.name != "kustomization.yaml")
    for doc in DOCS:
        assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"], doc
    kinds = sorted(doc["kind"] for doc in DOCS)
    expected = ["ConfigMap", "Deployment", "PodDisruptionBudget", "Secret", "Service", "Service", "StatefulSet"]
    assert kinds == expected


@pytest.mark.parametrize("version", KUBERNETES)
@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: f"{doc['kind']}-{doc['metadata']['name']}")
def test_every_document_is_valid_against_the_api_schema(doc: dict[str, Any], version: str) -> None:
    """What ``kubectl apply --dry-run=client`` would check, from the API's published JSON schemas shipped in a
    package: types, required fields, and (strict) no field the API does not know, such as a misspelt probe."""
    kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["spec", "template", "spec", "containers", 0, "readinessProb"], {"httpGet": {"path": "/readyz"}}),
        (["spec", "replicas"], "3"),
        (["spec", "template", "spec", "containers", 0, "ports", 0, "containerPort"], "http"),
    ],
    ids=["unknown-field", "string-replicas", "named-container-port"],
)
def test_the_schema_check_refuses_a_broken_deployment(path: list[str | int], value: object) -> None:
    broken = copy.deepcopy(DEPLOYMENT)
    parent: Any = broken
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES[-1], strict=True)


def test_the_config_loads_and_the_pod_runs_it_as_the_image_does(config: Config) -> None:
    assert CONTAINER["args"] == exec_form(FINAL.one("CMD"))
    assert config.host == "0.0.0.0"
    assert config.auth is not None and config.auth.tokens and config.admin is not None
    [port] = CONTAINER["ports"]
    assert port["containerPort"] == config.port
    assert POD["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(config.metrics_port or config.port),
        "prometheus.io/path": "/metrics",
    }


def test_the_probes_ask_the_health_endpoints_on_the_proxy_port() -> None:
    name = CONTAINER["ports"][0]["name"]
    assert CONTAINER["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": name}
    assert CONTAINER["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": name}
    assert CONTAINER["startupProbe"]["httpGet"]["path"] == "/healthz"


def test_a_pod_drains_before_it_is_killed(config: Config) -> None:
    pause = CONTAINER["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[0] == "sleep"
    grace = POD["spec"]["terminationGracePeriodSeconds"]
    assert grace > int(pause[1]) + config.shutdown_timeout


def test_three_replicas_with_resources_a_budget_and_no_affinity() -> None:
    labels = POD["metadata"]["labels"]
    assert DEPLOYMENT["spec"]["replicas"] == 3
    assert DEPLOYMENT["spec"]["selector"]["matchLabels"] == labels
    resources = CONTAINER["resources"]
    assert resources["requests"]["cpu"] and resources["requests"]["memory"] and resources["limits"]["memory"]
    budget = the("PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"] == labels
    assert 0 < budget["spec"]["minAvailable"] < DEPLOYMENT["spec"]["replicas"]
    service = the("Service", "shadowproxy")
    assert service["spec"]["selector"] == labels and service["spec"]["sessionAffinity"] == "None"
    assert service["spec"]["ports"][0]["targetPort"] == CONTAINER["ports"][0]["name"]
    security = CONTAINER["securityContext"]
    user = int(FINAL.one("USER").split(":")[0])
    assert POD["spec"]["securityContext"]["runAsUser"] == user and security["readOnlyRootFilesystem"]


def test_the_store_is_the_redis_statefulset(config: Config) -> None:
    store = urlsplit(config.store)
    assert store.scheme == "redis"
    redis = the("StatefulSet")
    service = the("Service", redis["spec"]["serviceName"])
    assert store.hostname == service["metadata"]["name"]
    assert service["spec"]["selector"] == redis["spec"]["template"]["metadata"]["labels"]
    assert store.port == service["spec"]["ports"][0]["port"]
    assert [p["containerPort"] for p in redis["spec"]["template"]["spec"]["containers"][0]["ports"]] == [store.port]


def test_the_allowed_hosts_name_the_service(config: Config) -> None:
    assert "shadowproxy" in config.allowed_hosts and "*" not in config.allowed_hosts
    assert all(not re.fullmatch(r"[\d.]+", host) for host in config.allowed_hosts)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_builds_the_kustomization() -> None:
    """``kubectl kustomize`` works offline; ``kubectl apply --dry-run=client`` does not, even with
    ``--validate=false`` (it asks the API server which kinds exist), so the schemas are checked by
    test_every_document_is_valid_against_the_api_schema instead."""
    done = subprocess.run(["kubectl", "kustomize", str(MANIFESTS)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    rendered = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    assert sorted((d["kind"], d["metadata"]["name"]) for d in rendered) == sorted(
        (d["kind"], d["metadata"]["name"]) for d in DOCS
    )
