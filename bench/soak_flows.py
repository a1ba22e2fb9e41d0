"""The client side of the soak (bench/soak.py): what each simulated client does, and the
tally of what came back.

Four flows, each a loop until the soak stops:

* ``progress``: a session-era ``countdown`` call (numbered progress events 1..n) answered
  with SSE; whenever the stream is cut (a killed worker) or ends without the result, the
  client resumes it with ``GET`` + ``Last-Event-ID`` through the load balancer.
* ``resume``: the same, but the client itself hangs up after a few events and resumes.
* ``modern``: stateless 2026-07-28 ``tools/call`` (JSON answers).
* ``elicit``: a session-era ``ask_name`` call; the client answers the server's
  ``elicitation/create`` with a separate POST (on whichever node the balancer picks) and
  reads the greeting, resuming the stream if it is cut.

A numbered stream must deliver every number exactly once, in order, then the result; or
end with the server's error for a stopped worker (its *epitaph*) after an unbroken prefix.
Anything missing or repeated is counted as lost or duplicated. Every failure is recorded
with its time span; soak.py calls it *explained* if a worker was killed during that span.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

from tests.harness.client import ELICITATION, initialize, modern_meta, notification, tool_call
from tests.harness.client import HEADERS as ACCEPT
from tests.harness.client import SESSION_VERSION as VERSION
from tests.harness.sse import Event, sse_events

#: How many times one call is resumed before it counts as a failure.
MAX_RESUMES = 20
#: One flow iteration (a call and its resumes) longer than this is a hang.
OPERATION_TIMEOUT_S = 60.0


class FlowError(Exception):
    """One operation failed; ``kind`` is how (``http-502``, ``RemoteProtocolError``, ...)."""

    def __init__(self, kind: str, detail: str = "", retry_after: str | None = None) -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail
        self.retry_after = retry_after


@dataclass
class Failure:
    flow: str
    kind: str
    started: float
    ended: float
    detail: str


@dataclass
class Tally:
    """Everything the clients saw; soak.py turns it into the report."""

    requests: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    #: (flow, started, ended) of each stream that ended with the epitaph.
    epitaphs: list[tuple[str, float, float]] = field(default_factory=list)
    lost_events: int = 0
    duplicate_events: int = 0
    examples: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        if len(self.examples) < 20:
            self.examples.append(text)


async def start_session(http: httpx.AsyncClient, url: str, tally: Tally) -> dict[str, str]:
    init = initialize(VERSION, ELICITATION, rid=0, name="soak")
    tally.requests["initialize"] += 1
    r = await http.post(url, json=init, headers=ACCEPT)
    if r.status_code != 200:
        raise FlowError(f"http-{r.status_code}", r.text[:200])
    headers = {**ACCEPT, "mcp-session-id": r.headers["mcp-session-id"],
               "mcp-protocol-version": VERSION}
    tally.requests["initialize"] += 1
    done = await http.post(url, json=notification("notifications/initialized"), headers=headers)
    if done.status_code != 202:
        raise FlowError(f"http-{done.status_code}", done.text[:200])
    return headers


class Stream:
    """One call's answer across its connections: the POST, then resumes."""

    def __init__(self, rid: int) -> None:
        self.rid = rid
        self.last_id: str | None = None
        self.final: Any = None
        self.progress: list[int] = []
        self.requests: list[dict[str, Any]] = []  # server -> client requests seen
        self.events = 0

    def take(self, event: Event) -> None:
        self.events += 1
        if event.id:
            self.last_id = event.id
        message = event.message
        if not isinstance(message, dict):
            return
        if message.get("method") == "notifications/progress":
            self.progress.append(int(message["params"]["progress"]))
        elif "method" in message and "id" in message:
            self.requests.append(message)
        elif message.get("id") == self.rid:
            self.final = message


async def read_stream(response: httpx.Response, stream: Stream, *, hang_up_after: int = 0,
                      on_request: Any = None) -> bool:
    """Read events into ``stream``; False if the client hung up on purpose."""
    if response.status_code != 200:
        await response.aread()
        raise FlowError(f"http-{response.status_code}", response.text[:200],
                        response.headers.get("retry-after"))
    async for event in sse_events(response):
        stream.take(event)
        if on_request is not None and stream.requests:
            await on_request(stream.requests.pop())
        if stream.final is not None:
            return True
        if hang_up_after and stream.events >= hang_up_after:
            return False
    return True


async def follow(http: httpx.AsyncClient, url: str, headers: dict[str, str], body: Any,
                 stream: Stream, tally: Tally, flow: str, *, hang_up_after: int = 0,
                 on_request: Any = None) -> int:
    """POST ``body`` and read its stream, resuming until the final message; resumes made."""
    tally.requests[flow] += 1
    try:
        async with http.stream("POST", url, json=body, headers=headers) as response:
            await read_stream(response, stream, hang_up_after=hang_up_after,
                              on_request=on_request)
    except httpx.TransportError:
        pass  # cut: resume below
    resumes = 0
    while stream.final is None:
        if stream.last_id is None:
            raise FlowError("cut-before-first-event")
        if resumes >= MAX_RESUMES:
            raise FlowError("too-many-resumes")
        resumes += 1
        tally.requests[f"{flow}-resume"] += 1
        resume = {**headers, "accept": "text/event-stream", "last-event-id": stream.last_id}
        try:
            async with http.stream("GET", url, headers=resume) as response:
                await read_stream(response, stream, on_request=on_request)
        except httpx.TransportError:
            await trio.sleep(0.05)  # the node is going: let the balancer notice
        except FlowError as exc:
            if exc.kind != "http-503":
                raise
            # Redis is out (a fault): the answer says when to come back; not a resume.
            tally.outcomes[f"{flow}-resume-503"] += 1
            resumes -= 1
            await trio.sleep(float(exc.retry_after or 1))
    return resumes


def check_numbers(flow: str, stream: Stream, n: int, tally: Tally, started: float) -> None:
    """Count what is missing or repeated; classify the ending."""
    seen = stream.progress
    final = stream.final
    dups = len(seen) - len(set(seen))
    if "result" in final:
        lost = len(set(range(1, n + 1)) - set(seen))
        tally.outcomes[f"{flow}-completed"] += 1
    elif final.get("error", {}).get("code") == -32603 and "stopped" in final["error"].get(
            "message", ""):
        top = max(seen, default=0)
        lost = len(set(range(1, top + 1)) - set(seen))
        tally.outcomes[f"{flow}-ended-by-kill"] += 1
        tally.epitaphs.append((flow, started, time.monotonic()))
    else:
        raise FlowError("error-result", json.dumps(final)[:200])
    if seen != sorted(seen):
        tally.problem(f"{flow} {stream.rid}: out of order {seen}")
    if lost or dups:
        tally.problem(f"{flow} {stream.rid}: lost {lost}, duplicated {dups}: {seen}")
    tally.lost_events += lost
    tally.duplicate_events += dups


@dataclass
class Load:
    """Settings of the flows (soak.py fills them from its arguments)."""

    url: str
    steps: int = 20
    delay_ms: int = 40
    hang_up_after: int = 6
    stop: trio.Event = field(default_factory=trio.Event)


async def run_flow(flow: str, index: int, load: Load, tally: Tally) -> None:
    """Repeat ``flow`` until the soak stops; each iteration's failure is recorded."""
    limits = httpx.Limits(max_connections=20, max_keepalive_connections=10)
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=30.0), limits=limits) as http:
        headers: dict[str, str] | None = None
        rid = index * 1_000_000
        while not load.stop.is_set():
            rid += 1
            started = time.monotonic()
            try:
                with trio.fail_after(OPERATION_TIMEOUT_S):
                    if flow != "modern" and headers is None:
                        headers = await start_session(http, load.url, tally)
                    await ONE_CALL[flow](http, load, headers or {}, rid, tally, started)
            except (FlowError, httpx.TransportError, trio.TooSlowError) as exc:
                kind = exc.kind if isinstance(exc, FlowError) else type(exc).__name__
                detail = exc.detail if isinstance(exc, FlowError) else str(exc)
                tally.failures.append(Failure(flow, kind, started, time.monotonic(), detail))
                if kind == "http-404":
                    headers = None  # the session is gone: start another
                await trio.sleep(0.05)


async def progress_call(http: httpx.AsyncClient, load: Load, headers: dict[str, str], rid: int,
                        tally: Tally, started: float, hang_up_after: int = 0) -> None:
    flow = "resume" if hang_up_after else "progress"
    stream = Stream(rid)
    body = tool_call("countdown", {"n": load.steps, "delay_ms": load.delay_ms}, rid,
                progressToken=f"t{rid}")
    await follow(http, load.url, headers, body, stream, tally, flow, hang_up_after=hang_up_after)
    check_numbers(flow, stream, load.steps, tally, started)


async def resume_call(http: httpx.AsyncClient, load: Load, headers: dict[str, str], rid: int,
                      tally: Tally, started: float) -> None:
    await progress_call(http, load, headers, rid, tally, started, load.hang_up_after)


async def modern_call(http: httpx.AsyncClient, load: Load, headers: dict[str, str], rid: int,
                      tally: Tally, started: float) -> None:
    body = tool_call("whoami", {}, rid)
    body["params"]["_meta"] = modern_meta()
    h = {**ACCEPT, "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call",
         "mcp-name": "whoami"}
    tally.requests["modern"] += 1
    r = await http.post(load.url, json=body, headers=h)
    if r.status_code != 200:
        raise FlowError(f"http-{r.status_code}", r.text[:200])
    if "result" not in r.json():
        raise FlowError("error-result", r.text[:200])
    tally.outcomes["modern-completed"] += 1
    await trio.sleep(0.02)


async def elicit_call(http: httpx.AsyncClient, load: Load, headers: dict[str, str], rid: int,
                      tally: Tally, started: float) -> None:
    stream = Stream(rid)
    answered: set[Any] = set()
    name = f"c{rid}"

    async def answer(request: dict[str, Any]) -> None:
        if request.get("method") != "elicitation/create" or request["id"] in answered:
            return
        answered.add(request["id"])
        reply = {"jsonrpc": "2.0", "id": request["id"],
                 "result": {"action": "accept", "content": {"name": name}}}
        give_up = time.monotonic() + 15  # the POST may meet a killed worker or a Redis
        for attempt in range(100):       # fault: send it again, for a while
            if time.monotonic() > give_up:
                break
            tally.requests["elicit-answer"] += 1
            sent = time.monotonic()  # this POST's span, not the call's, explains its failure
            try:
                r = await http.post(load.url, json=reply, headers=headers)
            except httpx.TransportError as exc:
                tally.failures.append(Failure("elicit-answer", type(exc).__name__, sent,
                                              time.monotonic(), str(exc)))
                continue
            if r.status_code == 202:
                return
            tally.failures.append(Failure("elicit-answer", f"http-{r.status_code}", sent,
                                          time.monotonic(), r.text[:200]))
            await trio.sleep(min(1.0, 0.1 * (attempt + 1)))

    await follow(http, load.url, headers, tool_call("ask_name", {}, rid), stream, tally, "elicit",
                 on_request=answer)
    final = stream.final
    if "result" in final:
        text = final["result"]["content"][0]["text"]
        if not text.startswith(f"Hello, {name}!"):
            raise FlowError("wrong-answer", text)
        tally.outcomes["elicit-completed"] += 1
    else:
        check_numbers("elicit", stream, 0, tally, started)


ONE_CALL = {"progress": progress_call, "resume": resume_call, "modern": modern_call,
            "elicit": elicit_call}
