"""How many generated inputs each hostile-input category ran (see test_hostile_fuzz.py).

A plain module, so the test module can count and ``conftest.py`` can print the table in
the terminal summary, which shows even under ``-q`` and output capture.
"""

from __future__ import annotations

from collections import Counter

#: "<category>/<era>" -> inputs sent.
COUNTS: Counter[str] = Counter()
#: Lines printed under the counts (the worker's memory growth).
NOTES: list[str] = []


def summary() -> list[str]:
    """One line per category, then the total; [] if no fuzz test ran."""
    if not COUNTS:
        return []
    width = max(len(k) for k in COUNTS)
    lines = [f"{key:<{width}}  {COUNTS[key]:>6}" for key in sorted(COUNTS)]
    lines.append(f"{'total':<{width}}  {sum(COUNTS.values()):>6}")
    return lines + NOTES
