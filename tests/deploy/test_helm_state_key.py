"""The state key under GitOps and upgrades: one key across every pod, or no render at all.

``helm template`` (Argo CD, Flux) renders with no cluster, so ``lookup`` finds nothing. The
upgrade tests render through Helm's own cluster-aware engine (``helm_python.Config.render``):
its real ``lookup`` asks a small Kubernetes API on loopback (discovery of ``/api/v1`` and GETs
of Secrets, the two requests Helm makes) that holds the Secrets a previous install left.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import yaml

from tests.stub_server import send_json, serving

from .test_helm import (
    CHART,
    NAMESPACE,
    RELEASE,
    chart,
    env_of,
    helm,
    load_values,
    merged,
    only,
    render,
    render_error,
    server_container,
)
from .test_helm_config import server_start_config

__all__ = ["chart"]

KEY = "k" * 40
OLD, NEW = "o" * 40, "n" * 40
REDIS = {"backend": "redis", "redis": {"url": "redis://redis.example:6379/0"}}
GENERATE = merged(REDIS, **{"auth.generateStateKey": True})


def pod_checksum(docs: list[dict[str, Any]]) -> str:
    template = only(docs, "Deployment")["spec"]["template"]["metadata"]
    checksum: str = template["annotations"]["checksum/secret"]
    return checksum


def secret_value(docs: list[dict[str, Any]], name: str, key: str) -> str:
    return base64.b64decode(only(docs, "Secret", name)["data"][key]).decode()


# Without a cluster (helm template) ---------------------------------------------------------


@pytest.mark.parametrize("backend", ["redis", "stateless"])
def test_a_fleet_without_a_state_key_refuses_to_render(chart: Any, backend: str) -> None:
    values = merged(REDIS, backend=backend)
    for _ in range(2):  # every render refuses: no pod ever gets a key of its own
        error = render_error(chart, values)
        assert f"backend={backend} runs workers that must share one state key" in error
        assert "auth.generateStateKey=true (helm install/upgrade only" in error


def test_two_renders_with_a_given_key_give_every_pod_the_same_key(chart: Any) -> None:
    values = merged(REDIS, **{"auth.stateKey": KEY})
    one, two = render(chart, values), render(chart, values)
    assert secret_value(one, RELEASE, "state-key") == secret_value(two, RELEASE, "state-key") == KEY
    assert pod_checksum(one) == pod_checksum(two)
    ref = env_of(server_container(one))["SCALEMCP_STATE_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": RELEASE, "key": "state-key"}


def test_memory_backend_needs_no_key_and_renders_the_same_twice(chart: Any) -> None:
    one, two = render(chart, {}), render(chart, {})
    assert "SCALEMCP_STATE_KEYS" not in env_of(server_container(one))
    assert pod_checksum(one) == pod_checksum(two)  # nothing random: no roll on every sync


def test_generated_keys_roll_the_pods_because_the_checksum_hashes_the_key(chart: Any) -> None:
    """Without a cluster a generated key is new on each render (hence unfit for helm
    template), and the pods' checksum follows the key itself, not the values."""
    one, two = render(chart, GENERATE), render(chart, GENERATE)
    key_one = secret_value(one, f"{RELEASE}-state-key", "state-key")
    key_two = secret_value(two, f"{RELEASE}-state-key", "state-key")
    assert key_one != key_two
    assert pod_checksum(one) != pod_checksum(two)
    # Within one render the Secret and the checksum saw the same key (the chart Secret's
    # data, then the generated key, as the template hashes them: Go's sorted-key JSON).
    chart_data = {k: base64.b64decode(v).decode()
                  for k, v in only(one, "Secret", RELEASE)["data"].items()}
    material = json.dumps({"chart": chart_data, "generated": key_one}, sort_keys=True,
                          separators=(",", ":"))
    assert pod_checksum(one) == hashlib.sha256(material.encode()).hexdigest()


def test_an_upgrade_that_cannot_see_the_kept_key_refuses(chart: Any) -> None:
    with pytest.raises(helm.HelmError) as caught:
        chart.render(GENERATE, name=RELEASE, namespace=NAMESPACE, is_upgrade=True)
    error = str(caught.value)
    assert ("this upgrade cannot find the generated state key "
            "(Secret mcp/scalemcp-state-key") in error
    assert "Set auth.stateKey or auth.existingSecret instead" in error


# The key ring --------------------------------------------------------------------------------


def test_previous_state_keys_reach_the_server_as_its_key_ring(chart: Any, tmp_path: Path) -> None:
    values = merged(REDIS, **{"auth.stateKey": NEW, "auth.previousStateKeys": [OLD, "p" * 32]})
    docs = render(chart, values)
    assert secret_value(docs, RELEASE, "previous-state-keys") == f"{OLD},{'p' * 32}"
    config = server_start_config(chart, values, tmp_path)
    assert config.request_state.keys == [NEW, OLD, "p" * 32]  # the first signs, all verify
    # Adding or dropping a verify-only key rolls the pods.
    fewer = merged(values, **{"auth.previousStateKeys": [OLD]})
    assert pod_checksum(render(chart, fewer)) != pod_checksum(docs)
    assert server_start_config(chart, fewer, tmp_path).request_state.keys == [NEW, OLD]


def test_existing_secret_key_ring(chart: Any) -> None:
    values = merged(REDIS, **{"auth.existingSecret": "mcp-keys",
                              "auth.existingSecretPreviousStateKeysKey": "previous"})
    env = env_of(server_container(render(chart, values)))
    assert env["SCALEMCP_STATE_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "mcp-keys", "key": "state-key"}
    assert env["SCALEMCP_PREVIOUS_STATE_KEYS"]["valueFrom"]["secretKeyRef"] == {
        "name": "mcp-keys", "key": "previous"}
    assert env["SCALEMCP_STATE_KEYS"]["value"] == (
        "$(SCALEMCP_STATE_KEY),$(SCALEMCP_PREVIOUS_STATE_KEYS)")


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({"existingSecret": "s", "previousStateKeys": [OLD]},
         "auth.previousStateKeys needs auth.stateKey"),
        ({"generateStateKey": True, "previousStateKeys": [OLD]},
         "auth.previousStateKeys needs auth.stateKey"),
        ({"stateKey": KEY, "existingSecretPreviousStateKeysKey": "p"},
         "auth.existingSecretPreviousStateKeysKey needs auth.existingSecret"),
        ({"stateKey": KEY, "previousStateKeys": [KEY]}, "repeats auth.stateKey"),
    ],
    ids=["previous-with-existing", "previous-with-generated", "key-without-secret", "repeat"],
)
def test_key_ring_values_that_cannot_work_fail(chart: Any, auth: dict[str, Any],
                                               message: str) -> None:
    assert message in render_error(chart, {**REDIS, "auth": auth})


@pytest.mark.parametrize(
    "auth",
    [{"stateKey": "a" * 20 + "," + "b" * 20}, {"stateKey": "short"},
     {"stateKey": KEY, "previousStateKeys": ["short"]},
     {"stateKey": KEY, "previousStateKeys": ["x" * 32 + " y"]}],
    ids=["comma", "short", "short-previous", "space"],
)
def test_schema_rejects_keys_that_would_break_the_ring(chart: Any, auth: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmValuesError, match=r"stateKey|previousStateKeys"):
        chart.render({**REDIS, "auth": auth}, name=RELEASE, namespace=NAMESPACE)


# With a cluster: Helm's lookup against a Kubernetes API on loopback ------------------------


class Cluster:
    """Secrets of namespace ``mcp``, served the way Helm's ``lookup`` asks for them."""

    def __init__(self) -> None:
        self.secrets: dict[str, dict[str, str]] = {}
        self.asked: list[str] = []
        self.kubeconfig = ""

    def keep(self, docs: list[dict[str, Any]]) -> None:
        """What ``helm install`` would have created: the rendered Secrets."""
        for doc in docs:
            if doc["kind"] == "Secret":
                self.secrets[doc["metadata"]["name"]] = doc["data"]

    async def handle(self, scope: dict[str, Any], body: bytes, send: Any) -> None:
        path: str = scope["path"]
        self.asked.append(path)
        prefix = f"/api/v1/namespaces/{NAMESPACE}/secrets/"
        if path == "/api/v1":
            await send_json(send, json.dumps({
                "kind": "APIResourceList", "groupVersion": "v1", "resources": [
                    {"name": "secrets", "singularName": "secret", "namespaced": True,
                     "kind": "Secret", "verbs": ["get", "list"]}]}).encode())
        elif path.startswith(prefix) and path[len(prefix):] in self.secrets:
            name = path[len(prefix):]
            await send_json(send, json.dumps({
                "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": name, "namespace": NAMESPACE},
                "data": self.secrets[name]}).encode())
        else:
            await send_json(send, json.dumps({
                "apiVersion": "v1", "kind": "Status", "status": "Failure",
                "reason": "NotFound", "code": 404}).encode(), 404)


@asynccontextmanager
async def open_cluster() -> AsyncIterator[Cluster]:
    cluster = Cluster()
    async with serving(cluster.handle) as url:
        cluster.kubeconfig = json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "stub",
            "clusters": [{"name": "stub", "cluster": {"server": url}}],
            "users": [{"name": "stub", "user": {"token": "test"}}],
            "contexts": [{"name": "stub", "context": {"cluster": "stub", "user": "stub"}}]})
        yield cluster


async def render_against(cluster: Cluster, values: dict[str, Any], *,
                         upgrade: bool) -> list[dict[str, Any]]:
    """Render as ``helm upgrade`` (or install) would, with ``lookup`` reaching ``cluster``."""
    def run() -> dict[str, str]:
        with helm.Chart.load(CHART) as loaded, helm.Config(
            kubeconfig_content=cluster.kubeconfig, namespace=NAMESPACE
        ) as config:
            rendered: dict[str, str] = config.render(
                loaded, values, name=RELEASE, namespace=NAMESPACE, is_upgrade=upgrade,
                is_install=not upgrade)
            return rendered

    manifests = await trio.to_thread.run_sync(run)
    return [doc for path, text in sorted(manifests.items()) if not path.endswith("NOTES.txt")
            for doc in yaml.safe_load_all(text) if doc]


async def test_an_upgrade_keeps_the_generated_key_and_the_pods_stay() -> None:
    with trio.fail_after(60):
        async with open_cluster() as cluster:
            installed = await render_against(cluster, GENERATE, upgrade=False)
            cluster.keep(installed)
            upgraded = await render_against(cluster, GENERATE, upgrade=True)
            again = await render_against(cluster, merged(GENERATE, replicaCount=3), upgrade=True)
            asked = list(cluster.asked)
            # The Secret was deleted by hand: the upgrade refuses instead of a new key.
            del cluster.secrets[f"{RELEASE}-state-key"]
            with pytest.raises(helm.HelmError, match="cannot find the generated state key"):
                await render_against(cluster, GENERATE, upgrade=True)
    name = f"{RELEASE}-state-key"
    key = secret_value(installed, name, "state-key")
    assert secret_value(upgraded, name, "state-key") == key
    assert secret_value(again, name, "state-key") == key
    assert pod_checksum(upgraded) == pod_checksum(installed) == pod_checksum(again)
    assert f"/api/v1/namespaces/{NAMESPACE}/secrets/{name}" in asked  # a real lookup


async def test_a_reinstall_finds_the_kept_key() -> None:
    """``helm.sh/resource-policy: keep`` leaves the Secret after ``helm uninstall``; a new
    install looks it up and goes on with the same key."""
    with trio.fail_after(60):
        async with open_cluster() as cluster:
            first = await render_against(cluster, GENERATE, upgrade=False)
            cluster.secrets = {f"{RELEASE}-state-key":
                               only(first, "Secret", f"{RELEASE}-state-key")["data"]}
            second = await render_against(cluster, GENERATE, upgrade=False)
    name = f"{RELEASE}-state-key"
    assert secret_value(second, name, "state-key") == secret_value(first, name, "state-key")


async def test_a_changed_existing_secret_rolls_the_pods_on_upgrade() -> None:
    values = merged(REDIS, **{"auth.existingSecret": "mcp-keys",
                              "auth.existingSecretPreviousStateKeysKey": "previous"})

    def stored(current: str, previous: str) -> dict[str, str]:
        return {"state-key": base64.b64encode(current.encode()).decode(),
                "previous": base64.b64encode(previous.encode()).decode()}

    checksums: list[str] = []
    steps: list[Callable[[Cluster], None]] = [
        lambda c: c.secrets.update({"mcp-keys": stored(OLD, NEW)}),
        lambda c: None,  # unchanged: no roll
        lambda c: c.secrets.update({"mcp-keys": stored(NEW, OLD)}),  # promoted: roll
    ]
    with trio.fail_after(60):
        async with open_cluster() as cluster:
            for step in steps:
                step(cluster)
                checksums.append(pod_checksum(await render_against(cluster, values,
                                                                   upgrade=True)))
    assert checksums[0] == checksums[1] != checksums[2]
    offline = pod_checksum(render_docs(values))
    assert offline not in checksums  # helm template sees no Secret: values alone


def render_docs(values: dict[str, Any]) -> list[dict[str, Any]]:
    with helm.Chart.load(CHART) as loaded:
        return render(loaded, values)


def test_ci_values_that_generate_a_key_say_so() -> None:
    for name in ("ingress-tls", "redis-demo"):
        assert load_values(CHART / "ci" / f"{name}-values.yaml")["auth"]["generateStateKey"]
