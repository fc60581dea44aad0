"""Make the shared test builders importable under pytest's importlib import mode too."""

import sys
from pathlib import Path

# The workspace root runs pytest with --import-mode=importlib, which puts no test folder on
# sys.path; the builders module lives beside this file.
sys.path.insert(0, str(Path(__file__).parent))
