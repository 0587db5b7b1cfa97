"""What the framer tests share: where the compiled twin may be missing, and where it may not."""

from __future__ import annotations

import os

import pytest

from shared.pgwire import framing


def require_compiled() -> None:
    """Skip a test of the compiled framer where no C compiler built it (the pure-Python twin runs there);
    under CI, fail instead: CI builds it, so a missing extension there is a broken build, not a skip."""
    if framing.COMPILED:
        return
    reason = "the compiled framer (shared/pgwire/_framing.c) was not built here"
    if os.environ.get("CI"):
        pytest.fail(reason + "; CI builds it, so the build is broken")
    pytest.skip(reason)
