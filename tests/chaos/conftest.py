"""The fault campaign's tests: the short one runs in the default suite, the long one on demand.

A test marked ``chaos`` (the 1,000-fault campaign, ``make chaos``) runs only
when the ``-m`` expression names that marker (``pytest -m chaos``); any other
run, ``-m integration`` included, leaves it out.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "chaos" in (config.getoption("markexpr") or ""):
        return
    kept, dropped = [], []
    for item in items:
        (dropped if item.get_closest_marker("chaos") is not None else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
