from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration needs the engine: mark it so `-m 'not docker'` works."""
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.docker)
