"""What the chart does for a real multi-pod deployment: private metrics and probes, readiness
that rides out a Redis blip, autoscaling on the server's own gauges, egress and key prefixes
per release, alerts; and every values path added for it renders and validates strictly.

Rendering and validation as in test_helm.py (Helm's engine, kubernetes-validate strict on the
Kubernetes versions tested there); metric names are checked against the server's registry and
PromQL with promql-parser.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from scalemcp.config import Config
from scalemcp.observability.metrics import REGISTRY

from .test_helm import (
    CHART,
    CRD_KINDS,
    KUBE_VERSIONS,
    NAMESPACE,
    PUBLIC_PATHS,
    RELEASE,
    chart,
    env_of,
    helm,
    kubernetes_validate,
    load_values,
    merged,
    only,
    render,
    render_raw,
    server_container,
    yaml,
)
from .test_helm_config import server_start_config

__all__ = ["chart"]

ROOT = CHART.parents[1]
OPS_PATHS = ("/metrics", "/healthz", "/readyz")
REDIS = {"backend": "redis", "redis": {"url": "redis://redis.example:6379/0"},
         "auth": {"stateKey": "k" * 40}}


def prefix_matches(prefix: str, path: str) -> bool:
    """Ingress ``Prefix`` / Gateway ``PathPrefix``: element-wise on ``/``."""
    prefix = prefix.rstrip("/")
    return path == prefix or path.startswith(prefix + "/") or prefix == ""


# Private metrics and probes ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["ingress-tls", "gateway", None])
def test_default_routes_carry_mcp_and_never_the_ops_endpoints(chart: Any,
                                                              name: str | None) -> None:
    values = load_values(CHART / "ci" / f"{name}-values.yaml") if name else merged(
        REDIS, **{"ingress.enabled": True})
    docs = render(chart, values)
    routed: list[str] = []
    for ingress in (d for d in docs if d["kind"] == "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert path["backend"]["service"]["port"] == {"name": "http"}
                assert path["pathType"] == "Prefix"
                routed.append(path["path"])
    for route in (d for d in docs if d["kind"] == "HTTPRoute"):
        for rule in route["spec"]["rules"]:
            assert rule["backendRefs"] == [{"name": RELEASE, "port": 80}]  # not 9090
            routed += [m["path"]["value"] for m in rule["matches"]]
    assert routed == PUBLIC_PATHS
    for path in OPS_PATHS:
        assert not any(prefix_matches(p, path) for p in routed), path
    for path in ("/mcp", "/sse", "/messages", "/.well-known/oauth-protected-resource/mcp"):
        assert any(prefix_matches(p, path) for p in routed), path


def test_the_server_serves_ops_where_the_probes_and_scrapes_go(chart: Any, tmp_path: Path) -> None:
    values = load_values(CHART / "ci" / "redis-standalone-values.yaml")
    docs = render(chart, values)
    container = server_container(docs)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    config = server_start_config(chart, values, tmp_path)
    assert config.ops.metrics_port == ports["metrics"] == 9090
    assert config.server.port == ports["http"] != 9090
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] == "metrics"
    service = {p["name"]: p for p in only(docs, "Service")["spec"]["ports"]}
    assert service["metrics"]["targetPort"] == "metrics"
    assert only(docs, "ServiceMonitor")["spec"]["endpoints"][0]["port"] == "metrics"
    policy = only(docs, "NetworkPolicy")
    assert {r["ports"][0]["port"] for r in policy["spec"]["ingress"]} == {"http", "metrics"}


def test_routes_of_your_own_replace_the_public_paths(chart: Any) -> None:
    values = merged(REDIS, **{"ingress.enabled": True, "ingress.hosts": [
        {"host": "a.example", "paths": [{"path": "/", "pathType": "Prefix"}]}],
        "httpRoute.enabled": True, "httpRoute.parentRefs": [{"name": "gw"}],
        "httpRoute.paths": ["/mcp"]})
    docs = render(chart, values)
    assert [p["path"] for p in only(docs, "Ingress")["spec"]["rules"][0]["http"]["paths"]] == ["/"]
    matches = only(docs, "HTTPRoute")["spec"]["rules"][0]["matches"]
    assert [m["path"]["value"] for m in matches] == ["/mcp"]


# Readiness and disruption ---------------------------------------------------------------------


def test_readiness_tolerates_a_redis_blip_and_drains_do_not_stall(chart: Any,
                                                                  tmp_path: Path) -> None:
    values = load_values(CHART / "ci" / "redis-standalone-values.yaml")
    docs = render(chart, values)
    config = server_start_config(chart, values, tmp_path)
    assert config.server.ready_backend_grace_s == 30
    assert server_container(docs)["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert only(docs, "PodDisruptionBudget")["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    off = render(chart, merged(values, **{"podDisruptionBudget.unhealthyPodEvictionPolicy": None}))
    assert "unhealthyPodEvictionPolicy" not in only(off, "PodDisruptionBudget")["spec"]


def test_stateless_readiness_is_healthz(chart: Any) -> None:
    docs = render(chart, load_values(CHART / "ci" / "stateless-values.yaml"))
    container = server_container(docs)
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


# Autoscaling on the server's gauges -------------------------------------------------------


def hpa_pod_metrics(docs: list[dict[str, Any]]) -> list[str]:
    hpa = only(docs, "HorizontalPodAutoscaler")
    return [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]


def test_autoscaling_passes_metrics_through(chart: Any) -> None:
    docs = render(chart, load_values(CHART / "ci" / "autoscaling-streams-values.yaml"))
    hpa = only(docs, "HorizontalPodAutoscaler")
    assert [m["type"] for m in hpa["spec"]["metrics"]] == ["Resource", "Pods", "Pods"]
    names = hpa_pod_metrics(docs)
    assert names == ["scalemcp_open_streams", "scalemcp_inflight_requests"]
    for name in names:  # what the server exports, per pod (gauges summed over workers)
        assert registered()[name] == "gauge"
        assert name in exported_series()
    only_custom = merged(load_values(CHART / "ci" / "autoscaling-streams-values.yaml"),
                         **{"autoscaling.targetCPUUtilizationPercentage": None})
    assert [m["type"] for m in only(render(chart, only_custom), "HorizontalPodAutoscaler")[
        "spec"]["metrics"]] == ["Pods", "Pods"]


def registered() -> dict[str, str]:
    """Every series the server registers, by the name it is exported under: its type."""
    return {family.name + ("_total" if family.type == "counter" else ""): family.type
            for family in REGISTRY.collect()}


def exported_series() -> set[str]:
    """Every series docs/operations.md lists (a test there keeps it complete)."""
    table = (ROOT / "docs" / "operations.md").read_text()
    return set(re.findall(r"^\| `(scalemcp_[a-z_]+)` \|", table, flags=re.MULTILINE))


def promql(expression: str) -> Any:
    import promql_parser as parser  # a declared test dependency: missing, the test fails
    return parser.parse(expression)


def test_prometheus_adapter_rules_serve_the_metrics_the_hpa_asks_for(chart: Any) -> None:
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus-adapter-rules.yaml").read_text())
    served: list[str] = []
    for rule in rules["rules"]["custom"]:
        promql(rule["seriesQuery"])
        series = re.match(r"[a-z_]+", rule["seriesQuery"])
        assert series
        assert series.group(0) in registered()
        assert re.fullmatch(rule["name"]["matches"], series.group(0))
        assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}
        query = (rule["metricsQuery"].replace("<<.Series>>", series.group(0))
                 .replace("<<.LabelMatchers>>", 'namespace="mcp",pod=~"scalemcp-.*"')
                 .replace("<<.GroupBy>>", "pod"))
        promql(query)
        served.append(rule["name"]["as"])
    docs = render(chart, load_values(CHART / "ci" / "autoscaling-streams-values.yaml"))
    assert sorted(hpa_pod_metrics(docs)) == sorted(served)


# Alerts ----------------------------------------------------------------------------------------


def test_prometheus_rule_alerts_on_series_the_server_exports(chart: Any) -> None:
    docs = render(chart, load_values(CHART / "ci" / "redis-standalone-values.yaml"))
    rule = only(docs, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (group,) = rule["spec"]["groups"]
    alerts = {r["alert"]: r for r in group["rules"]}
    assert set(alerts) == {"ScalemcpRedisErrors", "ScalemcpWorkerRestarts",
                           "ScalemcpSlowConsumers", "ScalemcpHighErrorRate"}
    external = {"kube_pod_container_status_restarts_total"}  # kube-state-metrics
    for alert in alerts.values():
        promql(alert["expr"])
        names = set(re.findall(r"\b(?:scalemcp|kube)_[a-z_]+", alert["expr"]))
        assert names, alert["expr"]
        assert names - external <= exported_series(), names
        for selector in re.findall(r"scalemcp_[a-z_]+\{([^}]*)\}", alert["expr"]):
            # The ServiceMonitor's scrape labels: this release's series only.
            assert f'namespace="{NAMESPACE}", service="{RELEASE}"' in selector
        assert alert["labels"]["severity"] in {"info", "warning", "critical"}
        assert "{{ $value" in alert["annotations"]["description"]
    assert 'status=~"5.."' in alerts["ScalemcpHighErrorRate"]["expr"]
    assert "> 0.05" in alerts["ScalemcpHighErrorRate"]["expr"]
    # Gated on the CRD like the ServiceMonitor.
    gated = merged(REDIS, **{"prometheusRule.enabled": True})
    assert "PrometheusRule" not in {d["kind"] for d in render(chart, gated)}


# The smaller items -----------------------------------------------------------------------------


def test_ingress_body_size_admits_what_the_server_admits(chart: Any) -> None:
    docs = render(chart, merged(REDIS, **{"ingress.enabled": True}))
    size = only(docs, "Ingress")["metadata"]["annotations"][
        "nginx.ingress.kubernetes.io/proxy-body-size"]
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    assert int(size[:-1]) * units[size[-1].lower()] == Config().limits.max_body_bytes


@pytest.mark.parametrize(
    ("values", "ports"),
    [
        ("ingress-tls", {6379, 26379, 6380, 443}),  # the port in redis.url
        ("redis-sentinel", {6379, 26379, 443}),
        (merged(REDIS, **{"redis.url": "", "redis.standalone.host": "r",
                          "redis.standalone.port": 7000}), {6379, 26379, 7000, 443}),
        (merged(REDIS, **{"redis.url": "", "redis.mode": "cluster",
                          "redis.cluster.nodes": ["a:7001", "b:7002"]}),
         {6379, 26379, 7001, 7002, 443}),
        (merged(REDIS, **{"redis.url": "redis+sentinel://:p@s1:5000,s2:5001/m/0"}),
         {6379, 26379, 5000, 5001, 443}),
    ],
    ids=["url", "sentinel", "standalone-port", "cluster-ports", "sentinel-url"],
)
def test_egress_reaches_https_and_every_redis_port(chart: Any, values: Any,
                                                   ports: set[int]) -> None:
    if isinstance(values, str):
        values = load_values(CHART / "ci" / f"{values}-values.yaml")
    values = merged(values, **{"networkPolicy.enabled": True,
                               "networkPolicy.egress.enabled": True})
    policy = only(render(chart, values), "NetworkPolicy")
    found = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]} - {53}
    assert found == ports


def test_each_release_gets_its_own_redis_key_prefix(chart: Any, tmp_path: Path) -> None:
    prefixes = set()
    for release in ("blue", "green"):
        manifests = chart.render(REDIS, name=release, namespace="team")
        text = manifests[f"{RELEASE}/templates/deployment.yaml"]
        deployment = yaml.safe_load(text)
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        prefixes.add(env_of(container)["SCALEMCP_REDIS_KEY_PREFIX"]["value"])
    assert prefixes == {"smcp:team/blue-scalemcp:", "smcp:team/green-scalemcp:"}
    values = load_values(CHART / "ci" / "redis-cluster-values.yaml")
    assert server_start_config(chart, values, tmp_path).redis.key_prefix == "smcp:prod-eu:"
    with pytest.raises(helm.HelmValuesError, match="keyPrefix"):
        render_raw(chart, merged(REDIS, **{"redis.keyPrefix": "{tag}:"}))


# Every new values path renders and validates ------------------------------------------------


NEW_PATHS: dict[str, dict[str, Any]] = {
    "metrics-port-off": merged(REDIS, **{"server.metricsPort": None, "serviceMonitor.enabled":
                                          True, "serviceMonitor.skipCapabilityCheck": True,
                                          "networkPolicy.enabled": True}),
    "grace": merged(REDIS, **{"server.readyBackendGraceSeconds": 0}),
    "key-prefix": merged(REDIS, **{"redis.keyPrefix": "tenant-a:"}),
    "key-ring": merged(REDIS, **{"auth.previousStateKeys": ["p" * 32, "q" * 32]}),
    "generated": merged(REDIS, auth={"generateStateKey": True}),
    "existing-ring": merged(REDIS, auth={"existingSecret": "keys",
                                         "existingSecretPreviousStateKeysKey": "previous"}),
    "public-paths": merged(REDIS, **{"publicPaths": ["/v1/mcp", "/.well-known/x"],
                                     "ingress.enabled": True, "ingress.proxyBodySize": "16m",
                                     "httpRoute.enabled": True,
                                     "httpRoute.parentRefs": [{"name": "gw"}],
                                     "httpRoute.paths": ["/v1/mcp"]}),
    "hpa-metrics": load_values(CHART / "ci" / "autoscaling-streams-values.yaml"),
    "pdb-policy": merged(REDIS, **{"replicaCount": 3,
                                   "podDisruptionBudget.unhealthyPodEvictionPolicy":
                                   "IfHealthyBudget"}),
    "network": merged(REDIS, networkPolicy={
        "enabled": True, "ingressFrom": [{"podSelector": {"matchLabels": {"a": "b"}}}],
        "metricsFrom": [{"namespaceSelector": {"matchLabels": {"x": "y"}}}],
        "egress": {"enabled": True, "httpsPorts": [443, 4318], "redisPorts": [6390]}}),
    "prometheus-rule": merged(REDIS, prometheusRule={
        "enabled": True, "skipCapabilityCheck": True, "labels": {"release": "p"},
        "redisErrorsPerSecond": 1, "slowConsumersPerSecond": 0.5, "http5xxRatio": 0.01,
        "workerExits": 3, "additionalRules": [{"record": "x:y", "expr": "sum(up)"}]}),
    "tests": merged(REDIS, **{"auth.mode": "api_key", "auth.apiKeys": [
        "c871f067542d565c57ebb8b54f99afe326644dceeb5c05fc2209a8161a52875e alice"],
        "tests.tool": {"name": "add", "argumentsJson": '{"a": 1, "b": 2}'},
        "tests.credentialSecret": {"name": "test-key", "key": "key"}}),
}


@pytest.mark.parametrize("values", NEW_PATHS.values(), ids=NEW_PATHS.keys())
def test_every_new_values_path_renders_lints_and_validates(chart: Any,
                                                           values: dict[str, Any]) -> None:
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE)
    assert not report["errors"], report
    assert not [m for m in report["messages"] if m["severity"] >= 2], report
    docs = render(chart, values)
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            continue
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


def test_new_values_reach_the_pod(chart: Any, tmp_path: Path) -> None:
    config = server_start_config(chart, NEW_PATHS["metrics-port-off"], tmp_path)
    assert config.ops.metrics_port is None
    docs = render(chart, NEW_PATHS["metrics-port-off"])
    assert [p["name"] for p in only(docs, "Service")["spec"]["ports"]] == ["http"]
    assert only(docs, "ServiceMonitor")["spec"]["endpoints"][0]["port"] == "http"
    grace = server_start_config(chart, NEW_PATHS["grace"], tmp_path)
    assert grace.server.ready_backend_grace_s == 0
    assert server_start_config(chart, NEW_PATHS["key-ring"], tmp_path).request_state.keys == [
        "k" * 40, "p" * 32, "q" * 32]
    routed = render(chart, NEW_PATHS["public-paths"])
    assert [p["path"] for p in only(routed, "Ingress")["spec"]["rules"][0]["http"]["paths"]] == [
        "/v1/mcp", "/.well-known/x"]
    pod = next(d for d in render(chart, NEW_PATHS["tests"]) if d["kind"] == "Pod")
    container = pod["spec"]["containers"][0]
    assert container["command"][3:6] == [f"http://{RELEASE}:80/mcp",
                                         f"http://{RELEASE}:9090/readyz", "session"]
    assert container["command"][6] == '{"arguments":{"a":1,"b":2},"name":"add"}'
    assert env_of(container)["MCP_TEST_CREDENTIAL"]["valueFrom"]["secretKeyRef"] == {
        "name": "test-key", "key": "key"}
    assert env_of(container)["MCP_TEST_AUTH"]["value"] == "api_key"
