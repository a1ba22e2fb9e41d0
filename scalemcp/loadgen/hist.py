"""A log-linear latency histogram in the style of HdrHistogram.

Theory of operation: values are non-negative integers (the bench records
microseconds). Values below ``2**sub_bits`` get one exact bucket each. Above
that, every power of two ``[2**k, 2**(k+1))`` is cut into ``2**(sub_bits-1)``
equal buckets, so a bucket is never wider than ``2 / 2**sub_bits`` of the
values it holds (0.78 % for the default ``sub_bits=8``). Recording is a few
integer operations; counts live in a dense list that grows on demand.

Two histograms with the same ``sub_bits`` merge by adding counts, which is how
the reports of several bench processes become one. ``to_wire`` / ``from_wire``
give a compact, JSON-friendly form (sparse ``[index, count]`` pairs).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import msgspec

__all__ = ["Histogram", "HistogramWire"]

DEFAULT_SUB_BITS = 8


class HistogramWire(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The serialised form of a `Histogram`."""

    sub_bits: int
    count: int
    min: int
    max: int
    total: int
    buckets: list[tuple[int, int]]


class Histogram:
    """Counts of integer values in log-linear buckets; see the module docstring."""

    __slots__ = ("_counts", "_half", "_size", "count", "max", "min", "sub_bits", "total")

    def __init__(self, sub_bits: int = DEFAULT_SUB_BITS) -> None:
        if not 2 <= sub_bits <= 16:
            raise ValueError(f"sub_bits must be within 2..16, got {sub_bits}")
        self.sub_bits = sub_bits
        self._size = 1 << sub_bits
        self._half = self._size >> 1
        self._counts: list[int] = [0] * self._size
        self.count = 0
        self.total = 0
        self.min = 0
        self.max = 0

    # -- recording -------------------------------------------------------------

    def index_of(self, value: int) -> int:
        """The bucket index holding ``value``."""
        if value < self._size:
            return value
        shift = value.bit_length() - self.sub_bits
        return self._size + (shift - 1) * self._half + ((value >> shift) - self._half)

    def bucket_bounds(self, index: int) -> tuple[int, int]:
        """The lowest and highest value that land in bucket ``index``."""
        if index < self._size:
            return index, index
        shift = (index - self._size) // self._half + 1
        mantissa = (index - self._size) % self._half + self._half
        low = mantissa << shift
        return low, low + (1 << shift) - 1

    def record(self, value: int, n: int = 1) -> None:
        """Count ``value`` (clamped at 0) ``n`` times."""
        if value < 0:
            value = 0
        index = value if value < self._size else self.index_of(value)
        counts = self._counts
        if index >= len(counts):
            counts.extend([0] * (index + 1 - len(counts)))
        counts[index] += n
        if self.count == 0:
            self.min = self.max = value
        elif value < self.min:
            self.min = value
        elif value > self.max:
            self.max = value
        self.count += n
        self.total += value * n

    def merge(self, other: Histogram) -> None:
        """Add every count of ``other`` to this histogram."""
        if other.sub_bits != self.sub_bits:
            raise ValueError("cannot merge histograms with different sub_bits")
        if other.count == 0:
            return
        if len(other._counts) > len(self._counts):
            self._counts.extend([0] * (len(other._counts) - len(self._counts)))
        for index, n in enumerate(other._counts):
            if n:
                self._counts[index] += n
        if self.count == 0:
            self.min, self.max = other.min, other.max
        else:
            self.min = min(self.min, other.min)
            self.max = max(self.max, other.max)
        self.count += other.count
        self.total += other.total

    # -- reading ---------------------------------------------------------------

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def buckets(self) -> Iterator[tuple[int, int]]:
        """``(index, count)`` of every non-empty bucket, in value order."""
        for index, n in enumerate(self._counts):
            if n:
                yield index, n

    def percentile(self, p: float) -> int:
        """The value at percentile ``p`` (0-100): the highest value of the bucket
        that holds the ``ceil(p/100 * count)``-th smallest recorded value, clamped
        to the recorded min and max. Returns 0 for an empty histogram."""
        if self.count == 0:
            return 0
        if p >= 100:
            return self.max
        rank = max(1, math.ceil(p / 100 * self.count))
        seen = 0
        for index, n in enumerate(self._counts):
            seen += n
            if seen >= rank:
                high = self.bucket_bounds(index)[1]
                return max(self.min, min(high, self.max))
        return self.max

    def percentiles(self, ps: Iterable[float]) -> dict[str, int]:
        """``{"p50": ..., "p99.9": ...}`` for each requested percentile."""
        return {f"p{_fmt(p)}": self.percentile(p) for p in ps}

    def cdf(self) -> list[tuple[int, float]]:
        """``(bucket high value, cumulative fraction)`` points for a CDF plot."""
        points: list[tuple[int, float]] = []
        seen = 0
        for index, n in self.buckets():
            seen += n
            points.append((min(self.bucket_bounds(index)[1], self.max), seen / self.count))
        return points

    # -- wire form -------------------------------------------------------------

    def to_wire(self) -> HistogramWire:
        return HistogramWire(
            sub_bits=self.sub_bits,
            count=self.count,
            min=self.min,
            max=self.max,
            total=self.total,
            buckets=list(self.buckets()),
        )

    @classmethod
    def from_wire(cls, wire: HistogramWire) -> Histogram:
        hist = cls(wire.sub_bits)
        for index, n in wire.buckets:
            if index >= len(hist._counts):
                hist._counts.extend([0] * (index + 1 - len(hist._counts)))
            hist._counts[index] += n
        hist.count, hist.min, hist.max, hist.total = wire.count, wire.min, wire.max, wire.total
        return hist


def _fmt(p: float) -> str:
    return str(int(p)) if float(p).is_integer() else str(p)
