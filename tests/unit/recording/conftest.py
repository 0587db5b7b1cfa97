"""Fixtures for the recording tests (builders live in recording_helpers)."""

from __future__ import annotations

import pytest
from recording_helpers import Recorded, record_session

from shared.recording.signing import LocalKeySigner


@pytest.fixture(scope="session")
def signer() -> LocalKeySigner:
    return LocalKeySigner(key_id="test-key")


@pytest.fixture
def recorded(signer: LocalKeySigner) -> Recorded:
    return record_session(signer)
