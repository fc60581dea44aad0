"""plugpay-simulator tests: the central-system module sits beside this file (importlib mode)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
