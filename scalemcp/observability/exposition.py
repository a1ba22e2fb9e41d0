"""Metric snapshots: the form one worker's figures take on disk, merged, and rendered.

A :class:`Snapshot` is everything one worker process counted, as plain data (msgspec
JSON), so that any worker of a node can merge its siblings' snapshots and answer a scrape
for the whole node (see :mod:`.metrics_dir`). :func:`merge` adds counters and histograms
series by series; gauges follow their family's ``merge`` rule: ``sum`` (each worker holds
its own share, e.g. open streams), ``max`` (each worker sees the same fleet-wide figure,
e.g. sessions in Redis) or ``worker`` (kept apart under a ``worker`` label).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal

import msgspec

__all__ = ["Family", "Kind", "Merge", "Series", "Snapshot", "fold", "merge", "render"]

Kind = Literal["counter", "gauge", "histogram"]
Merge = Literal["sum", "max", "worker"]


class Series(msgspec.Struct, array_like=True):
    labels: list[str]
    #: A counter's or gauge's value; a histogram's sum.
    value: float
    #: A histogram's count per bucket (not cumulative); the last is the +Inf bucket.
    buckets: list[int] | None = None


class Family(msgspec.Struct, omit_defaults=True):
    kind: Kind
    help: str
    labelnames: list[str] = []
    series: list[Series] = []
    bounds: list[float] = []
    merge: Merge = "sum"


class Snapshot(msgspec.Struct, omit_defaults=True):
    #: Unique per worker process of one server (``<slot>-<generation>``).
    worker: str = ""
    #: The worker's place among the server's workers ("0".."N-1"): the ``worker`` label.
    slot: str = ""
    #: When it was taken (Unix time).
    taken_at: float = 0.0
    families: dict[str, Family] = {}
    #: Retired figures only: the workers folded in, so a reader counts none of them twice
    #: (the latest ones), and how many were.
    absorbed: list[str] = []
    exits: int = 0


class _Merged:
    __slots__ = ("family", "values")

    def __init__(self, family: Family, labelnames: list[str]) -> None:
        self.family = Family(family.kind, family.help, labelnames, bounds=family.bounds,
                             merge=family.merge)
        self.values: dict[tuple[str, ...], Series] = {}

    def add(self, labels: tuple[str, ...], series: Series) -> None:
        mine = self.values.get(labels)
        if mine is None:
            buckets = None if series.buckets is None else list(series.buckets)
            self.values[labels] = Series(list(labels), series.value, buckets)
        elif self.family.kind == "gauge" and self.family.merge == "max":
            mine.value = max(mine.value, series.value)
        else:
            mine.value += series.value
            if mine.buckets is not None and series.buckets is not None:
                mine.buckets = [a + b for a, b in zip(mine.buckets, series.buckets, strict=True)]


def merge(snapshots: Iterable[Snapshot], *, gauges: bool = True) -> dict[str, Family]:
    """One node's figures from its workers' snapshots (``gauges=False``: counts only)."""
    merged: dict[str, _Merged] = {}
    for snapshot in snapshots:
        for name, family in snapshot.families.items():
            if family.kind == "gauge" and not gauges:
                continue
            by_worker = family.kind == "gauge" and family.merge == "worker"
            target = merged.get(name)
            if target is None:
                names = [*family.labelnames, "worker"] if by_worker else family.labelnames
                target = merged[name] = _Merged(family, names)
            elif target.family.kind != family.kind or target.family.bounds != family.bounds:
                continue  # another version's figures: cannot be added up
            for series in family.series:
                labels = (*series.labels, snapshot.slot) if by_worker else tuple(series.labels)
                target.add(labels, series)
    out = {}
    for name, target in merged.items():
        target.family.series = [target.values[k] for k in sorted(target.values)]
        out[name] = target.family
    return out


def fold(retired: Snapshot, gone: Snapshot) -> Snapshot:
    """``retired`` with the counters and histograms of the worker ``gone`` added in."""
    families = merge([retired, gone], gauges=False)
    return Snapshot(families=families, absorbed=[*retired.absorbed, gone.worker],
                    exits=retired.exits + 1)


def render(families: dict[str, Family]) -> bytes:
    """The Prometheus text exposition format (version 0.0.4)."""
    out: list[str] = []
    for name in sorted(families):
        family = families[name]
        out += [f"# HELP {name} {family.help}", f"# TYPE {name} {family.kind}"]
        names = family.labelnames
        if family.kind != "histogram":
            out += [f"{name}{_fmt(names, s.labels)} {_num(s.value)}" for s in family.series]
            continue
        bounds = [*(_num(b) for b in family.bounds), "+Inf"]
        for s in family.series:
            cumulative = 0
            for le, count in zip(bounds, s.buckets or [], strict=True):
                cumulative += count
                out.append(f"{name}_bucket{_fmt([*names, 'le'], [*s.labels, le])} {cumulative}")
            out.append(f"{name}_sum{_fmt(names, s.labels)} {_num(s.value)}")
            out.append(f"{name}_count{_fmt(names, s.labels)} {cumulative}")
    return ("\n".join(out) + "\n").encode()


def _num(value: float) -> str:
    if math.isfinite(value) and value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _fmt(names: list[str], values: list[str]) -> str:
    if not names:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in zip(names, values, strict=True))
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
