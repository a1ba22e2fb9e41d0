"""The bench histogram: bucket geometry, percentiles against a sorted list, merging."""

from __future__ import annotations

import math
import random

import pytest

from scalemcp.loadgen.hist import Histogram


def exact_percentile(values: list[int], p: float) -> int:
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@pytest.mark.parametrize("sub_bits", [4, 8, 11])
def test_buckets_tile_the_integers(sub_bits: int) -> None:
    hist = Histogram(sub_bits)
    previous_high = -1
    for index in range(0, (1 << sub_bits) * 12):
        low, high = hist.bucket_bounds(index)
        assert low == previous_high + 1, index
        assert hist.index_of(low) == index
        assert hist.index_of(high) == index
        previous_high = high


@pytest.mark.parametrize("sub_bits", [6, 8])
def test_bucket_width_is_bounded(sub_bits: int) -> None:
    hist = Histogram(sub_bits)
    for value in [1 << 20, 12_345_678, 987_654_321_012]:
        low, high = hist.bucket_bounds(hist.index_of(value))
        assert low <= value <= high
        assert (high - low + 1) / low <= 2 / (1 << sub_bits)


def test_small_values_are_exact() -> None:
    hist = Histogram()
    values = list(range(200)) * 3
    for v in values:
        hist.record(v)
    for p in (1, 25, 50, 75, 99, 100):
        assert hist.percentile(p) == exact_percentile(values, p)
    assert hist.min == 0
    assert hist.max == 199
    assert hist.mean == pytest.approx(sum(values) / len(values))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_percentiles_match_a_sorted_list(seed: int) -> None:
    rng = random.Random(seed)
    values = [int(rng.lognormvariate(8, 1.5)) for _ in range(20_000)]
    values += [rng.randrange(50_000_000) for _ in range(50)]  # a long tail
    hist = Histogram()
    for v in values:
        hist.record(v)
    assert hist.count == len(values)
    assert hist.total == sum(values)
    for p in (0.1, 50, 90, 99, 99.9, 99.99):
        exact = exact_percentile(values, p)
        got = hist.percentile(p)
        assert exact <= got <= max(exact, math.floor(exact * (1 + 2 / 256)) + 1), p
    assert hist.percentile(100) == max(values)
    assert hist.percentile(0) == min(values)


def test_merge_equals_recording_everything_in_one() -> None:
    rng = random.Random(7)
    parts = [[rng.randrange(1, 10_000_000) for _ in range(3000)] for _ in range(4)]
    merged = Histogram()
    for part in parts:
        h = Histogram()
        for v in part:
            h.record(v)
        merged.merge(h)
    whole = Histogram()
    for v in (v for part in parts for v in part):
        whole.record(v)
    assert list(merged.buckets()) == list(whole.buckets())
    assert (merged.count, merged.min, merged.max, merged.total) == (
        whole.count,
        whole.min,
        whole.max,
        whole.total,
    )
    for p in (50, 99, 99.9):
        assert merged.percentile(p) == whole.percentile(p)


def test_merge_into_empty_and_from_empty() -> None:
    a = Histogram()
    b = Histogram()
    b.record(500)
    a.merge(Histogram())
    assert a.count == 0
    a.merge(b)
    assert (a.count, a.min, a.max) == (1, 500, 500)
    with pytest.raises(ValueError, match="sub_bits"):
        a.merge(Histogram(6))


def test_wire_round_trip() -> None:
    hist = Histogram()
    for v in (3, 3, 900, 70_000, 5_000_000):
        hist.record(v)
    again = Histogram.from_wire(hist.to_wire())
    assert list(again.buckets()) == list(hist.buckets())
    assert again.percentiles([50, 99.9]) == hist.percentiles([50, 99.9])
    assert set(hist.percentiles([50, 99.9])) == {"p50", "p99.9"}


def test_empty_and_negative() -> None:
    hist = Histogram()
    assert hist.percentile(99) == 0
    assert hist.cdf() == []
    hist.record(-5)
    assert hist.min == 0
    assert hist.cdf() == [(0, 1.0)]
