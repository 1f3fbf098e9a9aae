"""deploy/kubernetes: every overlay rendered by kustomize, validated offline against the Kubernetes
schemas (strict: a field Kubernetes does not know fails), and held to the real server: its flags
and WHISPER_* variables, its default ports, its routes, its metric and its drain settings.
"""

from __future__ import annotations

import copy
import functools
import re
import shutil
import subprocess
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from wyoming_whisper.config import Config, build_parser, load_config

from .harness import REPO, ServerProcess

DEPLOY = REPO / "deploy" / "kubernetes"
OVERLAYS = sorted(p.name for p in (DEPLOY / "overlays").iterdir() if p.is_dir())
# The oldest Kubernetes still maintained by the big clouds' extended support, and the newest the
# validator knows.
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
KINDS = {
    "ConfigMap": 1,
    "Service": 2,
    "PersistentVolumeClaim": 1,
    "Deployment": 1,
    "PodDisruptionBudget": 1,
    "HorizontalPodAutoscaler": 1,
}
# Variables the server reads besides one per flag (config.py), and the libraries' own.
EXTRA_WHISPER_VARIABLES = {"WHISPER_EXTRA_ARGS", "WHISPER_HASS_TOKEN_FILE", "WHISPER_API_KEY_FILE"}
LIBRARY_VARIABLES = {"HF_HOME", "HF_HUB_OFFLINE", "OMP_NUM_THREADS", "CUDA_CACHE_PATH"}
METRIC = "whisper_queue_depth"
CLOSE_SECONDS = 5  # what the grace period must leave after the drain: close ports, unload


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:  # CI (WHISPER_TEST_NO_SKIPS) fails on this skip
        pytest.skip("kubectl is not installed (it renders the manifests with its kustomize)")
    return path


@functools.cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(DEPLOY / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def one(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind]
    return found


def whisper_variables() -> set[str]:
    """Every WHISPER_* variable the server reads: one per flag, and three more."""
    dests = {a.dest for a in build_parser()._actions} - {"help", "version"}
    return {"WHISPER_" + d.upper() for d in dests} | EXTRA_WHISPER_VARIABLES


def container_config(container: dict[str, Any], configmap: dict[str, Any]) -> Config:
    """The Config this container's server would run with: the ConfigMap, its env, its args."""
    env = {**configmap["data"]}
    for item in container.get("env", []):
        env[item["name"]] = item["value"]
    unknown = {n for n in env if n.startswith("WHISPER_")} - whisper_variables()
    assert not unknown, f"not variables of the server: {unknown}"
    others = {n for n in env if not n.startswith("WHISPER_")} - LIBRARY_VARIABLES
    assert not others, others
    assert [r["configMapRef"]["name"] for r in container["envFrom"]] == [
        configmap["metadata"]["name"]
    ]
    return load_config(container.get("args", []), env)  # a bad flag or value exits 2


def dockerfile_user() -> int:
    users = set(re.findall(r"^USER (\d+):\d+$", (REPO / "Dockerfile").read_text(), re.M))
    assert len(users) == 1, users
    return int(users.pop())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_validates(overlay: str) -> None:
    docs = render(overlay)
    assert Counter(d["kind"] for d in docs) == KINDS
    for doc in docs:
        for version in VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


def test_the_validation_would_catch_a_mistake() -> None:
    """The validator is strict (unknown fields) and checks types: a typo or a wrong type fails."""
    deployment = copy.deepcopy(one(render(OVERLAYS[0]), "Deployment"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)
    container["readinessProbe"] = container.pop("readinesProbe")
    container["ports"][0]["containerPort"] = "http"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_matches_the_server(overlay: str, server: ServerProcess) -> None:
    docs = render(overlay)
    configmap = one(docs, "ConfigMap")
    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]
    spec = pod["spec"]
    (init,) = spec["initContainers"]
    (main,) = spec["containers"]
    cfg = container_config(main, configmap)
    download = container_config(init, configmap)

    # The init container fetches exactly what the server will load, into the same cache.
    assert download.download_only and not cfg.download_only
    assert download.models == cfg.models and download.cache_dir == cfg.cache_dir == Path("/models")
    assert init["image"] == main["image"]
    mounts = {m["mountPath"]: m for m in main["volumeMounts"]}
    assert mounts["/models"]["readOnly"] is True
    assert not any(m.get("readOnly") for m in init["volumeMounts"] if m["mountPath"] == "/models")
    volumes = {v["name"]: v for v in spec["volumes"]}
    claim = volumes[mounts["/models"]["name"]]["persistentVolumeClaim"]["claimName"]
    assert claim == one(docs, "PersistentVolumeClaim")["metadata"]["name"]
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]  # uploads spool there

    # Ports: the server's own (defaults, or what the variables set).
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    assert ports == {"http": cfg.port, "wyoming": cfg.wyoming_port} and not cfg.no_wyoming
    for service in (d for d in docs if d["kind"] == "Service"):
        for port in service["spec"]["ports"]:
            assert port["port"] == ports[port["targetPort"]], service["metadata"]["name"]
        assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    assert one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == selector

    # Probes on routes the real server answers: /ready for traffic, /health for liveness.
    probes = {kind: main[kind]["httpGet"] for kind in ("readinessProbe", "livenessProbe")}
    assert probes["readinessProbe"]["path"] == "/ready"
    assert probes["livenessProbe"]["path"] == "/health"
    assert main["startupProbe"]["httpGet"]["path"] == "/health"
    annotations = pod["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == cfg.port
    for path in {p["path"] for p in probes.values()} | {annotations["prometheus.io/path"]}:
        with urllib.request.urlopen(server.url + path, timeout=10) as resp:
            assert resp.status == 200, path
    assert all(p["port"] == "http" for p in probes.values())

    # Drain: not ready at once on SIGTERM; the grace period covers the delay and the drain.
    grace = spec["terminationGracePeriodSeconds"]
    assert grace >= cfg.shutdown_delay + cfg.drain_seconds + CLOSE_SECONDS, grace
    assert cfg.shutdown_delay > 0 and "lifecycle" not in main
    assert spec["enableServiceLinks"] is False  # no <SERVICE>_PORT in the environment

    # Unprivileged, read-only root filesystem, the image's user.
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == dockerfile_user()
    for container in (init, main):
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert "memory" in container["resources"]["limits"]

    # The overlay's image and device; the autoscaler on the server's own queue metric.
    assert main["image"].endswith(f":{overlay}")
    assert f" AS {overlay}\n" in (REPO / "Dockerfile").read_text()
    assert cfg.device == overlay and cfg.ttl == 0 and cfg.no_zeroconf
    gpus = main["resources"]["limits"].get("nvidia.com/gpu")
    assert (gpus == 1) if overlay == "cuda" else gpus is None
    hpa = one(docs, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    (metric,) = hpa["metrics"]
    assert metric["type"] == "Pods" and metric["pods"]["metric"]["name"] == METRIC
    target = float(metric["pods"]["target"]["averageValue"])
    assert cfg.max_concurrency <= target < cfg.max_concurrency + cfg.max_queue
    assert hpa["minReplicas"] >= 2  # the disruption budget then always leaves one serving
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as resp:
        assert f"\n{METRIC}{{model=" in resp.read().decode()


def test_the_adapter_serves_the_metric_the_autoscaler_asks_for() -> None:
    values = yaml.safe_load((DEPLOY / "prometheus-adapter.yaml").read_text())
    (rule,) = values["rules"]["custom"]
    assert rule["seriesQuery"].startswith(METRIC + "{")
    assert rule["name"]["as"] == METRIC
    assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}
