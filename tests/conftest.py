"""Shared fixtures. The ``stack`` fixture runs the real local stack exactly as ``make up`` does."""

from __future__ import annotations

import pytest

from tests.integration.stack import AirlockStack, start_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> AirlockStack:
    state = tmp_path_factory.mktemp("airlock-state")
    running = start_stack(state)
    yield running
    running.stop()
