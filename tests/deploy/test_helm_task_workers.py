"""The chart's dedicated task workers (taskWorkers): a second Deployment running
``scalemcp worker``, with its own replicas, resources and HPA, while the serving pods run
with ``--no-serve-tasks``; off by default. Rendered and validated as in test_helm.py."""

from __future__ import annotations

from typing import Any

from scalemcp.cli import serve_parser

from .test_helm import CHART, RELEASE, chart, load_values, merged, only, render, render_error

__all__ = ["chart"]  # the module-scoped fixture, shared with test_helm.py

VALUES = load_values(CHART / "ci" / "task-workers-values.yaml")
WORKER = f"{RELEASE}-worker"


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    pod = deployment["spec"]["template"]["spec"]
    found: dict[str, Any] = next(c for c in pod["containers"] if c["name"] == "scalemcp")
    return found


def test_off_by_default_the_serving_pods_run_the_tasks(chart: Any) -> None:
    docs = render(chart, load_values(CHART / "ci" / "redis-standalone-values.yaml"))
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"] == [RELEASE]
    assert "--no-serve-tasks" not in container(only(docs, "Deployment"))["args"]
    assert [d["metadata"]["name"] for d in docs
            if d["kind"] == "HorizontalPodAutoscaler"] == [RELEASE]


def test_a_worker_deployment_and_serving_pods_that_leave_tasks_to_it(chart: Any) -> None:
    docs = render(chart, VALUES)
    serving, worker = only(docs, "Deployment"), only(docs, "Deployment", WORKER)
    args = container(serving)["args"]
    assert args[0] == "serve"
    assert "--no-serve-tasks" in args
    runs = container(worker)
    assert runs["args"] == ["worker", args[1]]
    # no MCP port and no preStop sleep (no Service routes to it); its own resources
    assert [p["name"] for p in runs["ports"]] == ["metrics"]
    assert "lifecycle" not in runs
    assert runs["resources"] == VALUES["taskWorkers"]["resources"]
    assert container(serving)["resources"] != runs["resources"]
    # the same settings reach both (Redis, the state key): one app, one fleet
    names = {e["name"] for e in container(serving)["env"]}
    assert {"SCALEMCP_REDIS_KEY_PREFIX", "SCALEMCP_STATE_KEYS"} <= names
    assert {"SCALEMCP_REDIS_KEY_PREFIX", "SCALEMCP_STATE_KEYS"} <= {
        e["name"] for e in runs["env"]}
    # The Service, the PDB and the serving Deployment never select worker pods.
    pod_labels = worker["spec"]["template"]["metadata"]["labels"]
    assert worker["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    for selector in (only(docs, "Service")["spec"]["selector"],
                     serving["spec"]["selector"]["matchLabels"],
                     only(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]):
        assert not selector.items() <= pod_labels.items()
    assert serving["spec"]["selector"]["matchLabels"].items() <= (
        serving["spec"]["template"]["metadata"]["labels"].items())


def test_the_workers_scale_on_their_own(chart: Any) -> None:
    docs = render(chart, VALUES)
    hpa = only(docs, "HorizontalPodAutoscaler", WORKER)
    wanted = VALUES["taskWorkers"]["autoscaling"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == WORKER
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (
        wanted["minReplicas"], wanted["maxReplicas"])
    target = hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"]
    assert target == wanted["targetCPUUtilizationPercentage"]
    assert "replicas" not in only(docs, "Deployment", WORKER)["spec"]  # the HPA's
    fixed = render(chart, merged(VALUES, **{"taskWorkers.autoscaling.enabled": False}))
    assert only(fixed, "Deployment", WORKER)["spec"]["replicas"] == 3
    assert [d["metadata"]["name"] for d in fixed
            if d["kind"] == "HorizontalPodAutoscaler"] == [RELEASE]


def test_task_workers_need_redis(chart: Any) -> None:
    error = render_error(chart, {"taskWorkers": {"enabled": True}})
    assert "taskWorkers.enabled needs backend: redis" in error


def test_the_schema_refuses_unknown_worker_values(chart: Any) -> None:
    error = render_error(chart, merged(VALUES, **{"taskWorkers.replicas": 2}))
    assert "replicas" in error


def test_both_command_lines_are_ones_the_cli_accepts(chart: Any) -> None:
    """The rendered arguments, parsed by the CLI's own parser (``scalemcp worker`` takes
    the options of ``scalemcp serve``): an unknown option would exit 2."""
    docs = render(chart, VALUES)
    serving = container(only(docs, "Deployment"))["args"]
    worker = container(only(docs, "Deployment", WORKER))["args"]
    assert (serving[0], worker[0]) == ("serve", "worker")
    assert vars(serve_parser().parse_args(serving[1:]))["serve_tasks"] is False
    parsed = vars(serve_parser().parse_args(worker[1:]))
    assert parsed["target"] == serving[1]
    assert parsed["serve_tasks"] is not False


def test_workers_serve_metrics_and_probes_on_the_metrics_port(chart: Any) -> None:
    """``scalemcp worker --metrics-port``: its task figures scraped by a PodMonitor (no
    Service selects worker pods), liveness and readiness probed there; with metricsPort
    null it has no port and no probes."""
    docs = render(chart, merged(VALUES, **{"serviceMonitor.enabled": True,
                                           "serviceMonitor.skipCapabilityCheck": True}))
    runs = container(only(docs, "Deployment", WORKER))
    port = VALUES.get("server", {}).get("metricsPort", 9090)
    assert {"name": "SCALEMCP_METRICS_PORT", "value": str(port)} in runs["env"]
    assert runs["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
    assert runs["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert runs["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    monitor = only(docs, "PodMonitor", WORKER)
    selector = monitor["spec"]["selector"]["matchLabels"]
    pod_labels = only(docs, "Deployment", WORKER)["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items()
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    # The ServiceMonitor still scrapes the serving pods only.
    assert only(docs, "ServiceMonitor")["spec"]["selector"]["matchLabels"] != selector

    bare = render(chart, merged(VALUES, **{"server.metricsPort": None,
                                           "serviceMonitor.enabled": True,
                                           "serviceMonitor.skipCapabilityCheck": True}))
    runs = container(only(bare, "Deployment", WORKER))
    for absent in ("ports", "startupProbe", "livenessProbe", "readinessProbe", "lifecycle"):
        assert absent not in runs
    assert "SCALEMCP_METRICS_PORT" not in {e["name"] for e in runs["env"]}
    assert not [d for d in bare if d["kind"] == "PodMonitor"]


def test_worker_pods_have_a_network_policy_of_their_own(chart: Any) -> None:
    """Worker pods take no MCP traffic: their policy admits the metrics port only (none
    without one), and keeps the serving pods' egress (DNS, Redis)."""
    values = merged(VALUES, **{"networkPolicy.enabled": True,
                               "networkPolicy.egress.enabled": True})
    docs = render(chart, values)
    serving, worker = only(docs, "NetworkPolicy"), only(docs, "NetworkPolicy", WORKER)
    pod_labels = only(docs, "Deployment", WORKER)["spec"]["template"]["metadata"]["labels"]
    assert worker["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert not serving["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert [[p["port"] for p in rule["ports"]] for rule in worker["spec"]["ingress"]] == [
        ["metrics"]]
    assert [[p["port"] for p in rule["ports"]] for rule in serving["spec"]["ingress"]] == [
        ["http"], ["metrics"]]
    assert worker["spec"]["egress"] == serving["spec"]["egress"]
    closed = render(chart, merged(values, **{"server.metricsPort": None}))
    assert only(closed, "NetworkPolicy", WORKER)["spec"]["ingress"] == []
    assert only(closed, "NetworkPolicy", WORKER)["spec"]["policyTypes"][0] == "Ingress"
