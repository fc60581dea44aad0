"""Settings every test run of the repository shares (pytest loads this for every package).

With ``CI`` set, property tests run the same examples every time (derandomised, no per-example
deadline on a loaded machine): the gate that decides what lands is never a coin toss. A
developer's run still explores new random examples, which is where new bugs are found.
"""

from __future__ import annotations

import os

try:
    from hypothesis import settings
except ImportError:  # a package tested alone without hypothesis
    settings = None  # type: ignore[assignment]

if settings is not None:
    settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
    settings.register_profile("dev", deadline=None, print_blob=True)
    settings.load_profile("ci" if os.environ.get("CI") else "dev")


def pytest_report_header() -> str:
    if settings is None:
        return "property tests: hypothesis not installed"
    mode = "derandomised (CI)" if settings.default.derandomize else "random examples"
    return f"property tests: {mode}"
