"""The documented state-key rotation (docs/deploy.md), walked with two real workers.

Two ``scalemcp serve`` processes stand for two pods. Each step of the procedure changes the
chart values of one pod at a time, as a rolling update does; the pod's key ring is what the
chart renders for those values (``SCALEMCP_STATE_KEYS`` from its Secret), and the process is
restarted with it. At every step a 2026-07-28 multi round-trip request started on either
worker, whose ``requestState`` that worker signed, is finished on the other. The one-step
rotation that skips staging is walked too, and breaks, as the procedure says it would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness.client import ELICITATION, modern_headers, modern_request
from tests.harness.serve import ServeProcess

from .test_helm import chart
from .test_helm_config import server_start_config

__all__ = ["chart"]

OLD, NEW = "o" * 24 + "old-key-0123456", "n" * 24 + "new-key-0123456"
BASE = {"backend": "stateless"}
HEADERS = modern_headers("tools/call", "ask_name")
CALL = modern_request("tools/call", {"name": "ask_name", "arguments": {}}, 1, ELICITATION)

#: The procedure, per docs/deploy.md: (what it is, the auth values every pod ends up with).
STAGE = {"stateKey": OLD, "previousStateKeys": [NEW]}
PROMOTE = {"stateKey": NEW, "previousStateKeys": [OLD]}
RETIRE = {"stateKey": NEW}
PROCEDURE = [("stage the new key", STAGE), ("promote it", PROMOTE), ("retire the old", RETIRE)]


class Pod:
    """One worker process, restarted with the key ring the chart renders for its values."""

    def __init__(self, name: str, chart: Any, tmp: Path) -> None:
        self.name, self.chart, self.tmp = name, chart, tmp
        self.server: ServeProcess | None = None
        self.ring: list[str] = []

    def roll(self, auth: dict[str, Any]) -> None:
        config = server_start_config(self.chart, {**BASE, "auth": auth}, self.tmp)
        self.stop()
        self.ring = config.request_state.keys
        keys = [arg for key in self.ring for arg in ("--state-keys", key)]  # one per flag
        self.server = ServeProcess("examples.quickstart:app", "--stateless-only", *keys)

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def stop(self) -> None:
        if self.server is not None:
            log = self.server.stop()
            assert "Traceback" not in log, log
            self.server = None


def start(client: httpx.Client, pod: Pod) -> str:
    """The first round on ``pod``: its signed requestState."""
    result = client.post(pod.url, json=CALL, headers=HEADERS).json()["result"]
    assert result["resultType"] == "input_required"
    state: str = result["requestState"]
    return state


def finish(client: httpx.Client, pod: Pod, state: str) -> str:
    """The retry on ``pod`` with the answer: the greeting, or the error message."""
    retry = {**CALL, "id": 2, "params": {**CALL["params"], "requestState": state,
             "inputResponses": {"elicit-1": {"action": "accept", "content": {"name": "Bo"}}}}}
    body = client.post(pod.url, json=retry, headers=HEADERS).json()
    if "error" in body:
        return f"error: {body['error']['message']}"
    text: str = body["result"]["content"][0]["text"]
    return text


def crossed(client: httpx.Client, a: Pod, b: Pod) -> dict[str, str]:
    """Started on one pod, finished on the other, both ways."""
    return {f"{a.name}->{b.name}": finish(client, b, start(client, a)),
            f"{b.name}->{a.name}": finish(client, a, start(client, b))}


@pytest.fixture
def pods(chart: Any, tmp_path: Path) -> Iterator[tuple[Pod, Pod]]:
    a, b = Pod("a", chart, tmp_path), Pod("b", chart, tmp_path)
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


def test_rotation_one_pod_at_a_time_never_fails_a_request(pods: tuple[Pod, Pod]) -> None:
    a, b = pods
    a.roll({"stateKey": OLD})
    b.roll({"stateKey": OLD})
    steps: list[tuple[str, list[str], list[str], dict[str, str]]] = []
    with httpx.Client(timeout=10) as client:
        steps.append(("before", a.ring, b.ring, crossed(client, a, b)))
        signed_with_old = ""
        for what, auth in PROCEDURE:
            for pod in (a, b):
                if auth is RETIRE:  # to be retired: a state the old key signed is still
                    # honoured everywhere until the last pod has retired it
                    assert finish(client, pod, signed_with_old) == "Hello, Bo!"
                pod.roll(auth)
                steps.append((f"{what}: pod {pod.name}", a.ring, b.ring, crossed(client, a, b)))
            if auth is STAGE:
                signed_with_old = start(client, a)
    for step, ring_a, ring_b, results in steps:
        assert results == {"a->b": "Hello, Bo!", "b->a": "Hello, Bo!"}, (step, ring_a, ring_b)
    # The pods really went through every mixed state of the procedure.
    assert [(r_a, r_b) for _, r_a, r_b, _ in steps] == [
        ([OLD], [OLD]),
        ([OLD, NEW], [OLD]), ([OLD, NEW], [OLD, NEW]),
        ([NEW, OLD], [OLD, NEW]), ([NEW, OLD], [NEW, OLD]),
        ([NEW], [NEW, OLD]), ([NEW], [NEW]),
    ]


def test_promoting_without_staging_breaks_requests_mid_rollout(pods: tuple[Pod, Pod]) -> None:
    """The shortcut: a pod that signs with the new key before every pod verifies it."""
    a, b = pods
    a.roll(PROMOTE)
    b.roll({"stateKey": OLD})
    with httpx.Client(timeout=10) as client:
        results = crossed(client, a, b)
    assert results["b->a"] == "Hello, Bo!"  # a still verifies the old key
    assert results["a->b"] == ("error: requestState was signed with an unknown key; retry the "
                               "original request")
