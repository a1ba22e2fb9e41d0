"""The seam between scalemcp's serving loop and Hypercorn holds, or this fails loudly.

scalemcp.serving replaces Hypercorn's trio TCPServer and worker_serve and calls the rest
(scalemcp/serving/seam.py says what, and how). A Hypercorn release outside the tested range,
a changed signature, or a change in the code scalemcp replaced must be reviewed (and the
loop ported) before it is allowed: each fails here with what to read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.metadata
import inspect
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from scalemcp.serving import seam
from tests.harness.serve import ROOT


def declared_hypercorn() -> SpecifierSet:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = [Requirement(text) for text in project["dependencies"]]
    return next(r.specifier for r in found if r.name.lower() == "hypercorn")


def test_pyproject_allows_exactly_the_tested_hypercorn_releases() -> None:
    assert declared_hypercorn() == SpecifierSet(",".join(seam.TESTED_VERSIONS)), (
        "pyproject.toml's hypercorn range differs from scalemcp/serving/seam.py's "
        "TESTED_VERSIONS: change both, after running the suite on the new releases")


def test_the_installed_hypercorn_is_a_tested_release() -> None:
    version = importlib.metadata.version("hypercorn")
    assert version in SpecifierSet(",".join(seam.TESTED_VERSIONS)), (
        f"Hypercorn {version} is not a release scalemcp's loop was tested with "
        f"{seam.TESTED_VERSIONS}: see scalemcp/serving/seam.py")


@pytest.mark.parametrize("name", sorted(seam.REPLACED))
def test_the_hypercorn_code_the_loop_replaces_is_unchanged(name: str) -> None:
    module, _, qualname = name.partition(":")
    source = inspect.getsource(getattr(importlib.import_module(module), qualname))
    digest = hashlib.sha256(source.encode()).hexdigest()
    assert digest == seam.REPLACED[name], (
        f"Hypercorn's {name} changed (sha256 {digest}): scalemcp/serving replaces it. Read "
        f"the change, port what matters to scalemcp/serving, then record the new digest in "
        f"seam.REPLACED")


def parameters(obj: object) -> list[str]:
    return list(inspect.signature(obj).parameters)  # type: ignore[arg-type]


def test_the_protocol_classes_are_called_as_the_loop_calls_them() -> None:
    assert parameters(seam.ProtocolWrapper) == [
        "app", "config", "context", "task_group", "state", "ssl", "client", "server", "send",
        "alpn_protocol"]
    assert parameters(seam.ProtocolWrapper.initiate) == ["self"]
    assert parameters(seam.ProtocolWrapper.handle) == ["self", "event"]
    assert [f.name for f in dataclasses.fields(seam.RawData)] == ["data", "address"]
    assert [f.name for f in dataclasses.fields(seam.Updated)] == ["idle"]
    assert dataclasses.fields(seam.Closed) == ()
    # How .h2_bodies resets a stream: as the protocol handles a client's reset.
    for name in ("_close_stream", "_window_updated"):
        assert parameters(getattr(seam.H2Protocol, name)) == ["self", "stream_id"], name
    assert parameters(seam.H2Protocol._flush) == ["self"]
    # How .admission screens new streams: it wraps this, per connection.
    assert parameters(seam.H2Protocol._handle_events) == ["self", "events"]


def test_the_worker_parts_are_called_as_the_loop_calls_them() -> None:
    assert parameters(seam.WorkerContext) == ["max_requests"]
    context = seam.WorkerContext(None)
    for name in ("terminate", "terminated"):
        event = getattr(context, name)
        for method in ("set", "wait", "is_set"):
            assert callable(getattr(event, method)), (name, method)
    assert callable(context.mark_request)
    assert parameters(seam.Lifespan) == ["app", "config", "state"]
    for name in ("handle_lifespan", "wait_for_startup", "wait_for_shutdown"):
        assert callable(getattr(seam.Lifespan, name))
    assert parameters(seam.handle_app) == [
        "app", "config", "scope", "receive", "send", "sync_spawn", "call_soon"]
    for name in ("keep_alive_timeout", "read_timeout", "ssl_handshake_timeout",
                 "graceful_timeout", "max_requests", "max_requests_jitter", "backlog"):
        assert hasattr(seam.Config(), name), name
