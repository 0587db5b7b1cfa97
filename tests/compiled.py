"""What the tests of compiled twins share: where the compiled one may be missing, and where it may not."""

from __future__ import annotations

import os

import pytest


def require_compiled(built: bool, what: str) -> None:
    """Skip a test of a compiled twin where no C compiler built it (its pure-Python twin runs there);
    under CI, fail instead: CI builds it, so a missing extension there is a broken build, not a skip."""
    if built:
        return
    reason = f"{what} was not built here"
    if os.environ.get("CI"):
        pytest.fail(reason + "; CI builds it, so the build is broken")
    pytest.skip(reason)
