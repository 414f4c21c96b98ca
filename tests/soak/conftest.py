"""The soak test runs only on demand (``make soak``, or KBROKER_SOAK=1): it takes minutes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))  # _cluster, _failover

collect_ignore_glob = [] if os.environ.get("KBROKER_SOAK") else ["test_*.py"]
