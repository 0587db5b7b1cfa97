"""What the framer tests share: where the compiled twin may be missing, and where it may not."""

from __future__ import annotations

from shared.pg.wire import framing
from tests.compiled import require_compiled as _require


def require_compiled() -> None:
    """Skip a test of the compiled framer where it was not built; fail under CI (see tests/compiled.py)."""
    _require(framing.COMPILED, "the compiled framer (shared/pg/wire/_framing.c)")
