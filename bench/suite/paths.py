"""Where the suite finds its targets and writes its results; the cores it pins to."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGETS_DIR = ROOT / "bench" / "targets"
RESULTS_DIR = ROOT / "bench" / "results"
CACHE = ROOT / ".cache"
TICKS = os.sysconf("SC_CLK_TCK")
SERVER_CORES = {0}
CLIENT_CORES = {1}
DEFAULT_CLIENTS = (1, 16, 64, 256, 1024)
STATE_KEY = "bench-suite-state-key-0123456789abcdef"
