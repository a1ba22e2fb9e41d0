"""The bench's settings: one frozen msgspec Struct, filled by the CLI, sent to workers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

__all__ = ["SCENARIOS", "BenchConfig", "Era", "Scenario", "Shard"]

Era = Literal["session", "modern", "legacy-sse"]
Scenario = Literal[
    "call", "call-progress", "initialize", "list", "resume", "elicit", "listen", "mixed",
    "task",
]
SCENARIOS: tuple[Scenario, ...] = (
    "call",
    "call-progress",
    "initialize",
    "list",
    "resume",
    "elicit",
    "listen",
    "mixed",
    "task",
)
DEFAULT_TOOLS: dict[str, str] = {
    "call": "echo",
    "call-progress": "progress",
    "resume": "progress",
    "elicit": "ask",
    "listen": "touch",
    "mixed": "echo",
    "task": "noop",
}

PositiveInt = Annotated[int, Meta(ge=1)]
NonNegative = Annotated[float, Meta(ge=0)]


class BenchConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    url: str
    era: Era = "session"
    scenario: Scenario = "call"
    clients: PositiveInt = 10
    duration_s: NonNegative | None = 10.0
    """Length of the measured window; ``None`` when ``requests`` bounds the run."""
    requests: PositiveInt | None = None
    """Stop after this many measured operations (over all processes)."""
    warmup_s: NonNegative = 1.0
    rate: Annotated[float, Meta(gt=0)] | None = None
    """Open-loop arrival rate in operations per second (all processes); ``None``: closed loop."""
    tool: str | None = None
    args: dict[str, Any] | None = None
    headers: list[tuple[str, str]] = []
    http2: bool = False
    insecure: bool = False
    client: Literal["raw", "httpx"] = "raw"
    procs: PositiveInt = 1
    timeout_s: Annotated[float, Meta(gt=0)] = 30.0
    protocol_version: str | None = None
    """Session era: the version offered in ``initialize`` (default 2025-11-25)."""
    steps: PositiveInt = 5
    """call-progress / resume: progress notifications the tool is asked for."""
    step_delay_ms: NonNegative = 0
    drop_after: PositiveInt = 2
    """resume: SSE events read before the connection is dropped."""
    listeners_per_trigger: PositiveInt = 10
    """listen: listening clients per triggering client."""
    task_wait: Literal["poll", "listen"] = "poll"
    """task: wait for completion by polling ``tasks/get``, or (modern) on
    ``subscriptions/listen`` with the task's id."""
    task_poll_ms: NonNegative = 20
    """task: the pause between two ``tasks/get`` polls."""

    @property
    def tool_name(self) -> str:
        return self.tool or DEFAULT_TOOLS.get(self.scenario, "echo")

    def tool_args(self) -> dict[str, Any]:
        """``args``, else the arguments the bench targets' tool of that name takes, else {}."""
        if self.args is not None:
            return self.args
        if self.tool_name == "progress":
            delay = self.step_delay_ms or (20 if self.scenario == "resume" else 0)
            return {"steps": self.steps, "delay_ms": int(delay)}
        if self.tool_name == "echo":
            return {"message": "hello"}
        return {}

    def tools_called(self) -> dict[str, dict[str, Any]]:
        """Each tool the scenario calls, with its arguments (``mixed`` adds ``progress``)."""
        if self.scenario in ("list", "initialize"):
            return {}
        called = {self.tool_name: self.tool_args()}
        if self.scenario == "mixed":
            progress = msgspec.structs.replace(
                self, scenario="call-progress", tool="progress", args=None
            )
            called.setdefault("progress", progress.tool_args())
        return called


class Shard(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The part of a run one process does."""

    index: int = 0
    clients: int
    rate: float | None = None
    budget: int | None = None


def split(config: BenchConfig) -> list[Shard]:
    """Cut the run into ``config.procs`` shards with clients, rate and budget shared out."""
    procs = min(config.procs, config.clients)
    shards: list[Shard] = []
    for i in range(procs):
        clients = config.clients // procs + (1 if i < config.clients % procs else 0)
        share = clients / config.clients
        budget = None
        if config.requests is not None:
            budget = config.requests // procs + (1 if i < config.requests % procs else 0)
        rate = config.rate * share if config.rate is not None else None
        shards.append(Shard(index=i, clients=clients, rate=rate, budget=budget))
    return shards
