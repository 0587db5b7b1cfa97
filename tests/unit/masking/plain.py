"""Results whose lineage is plain: for tests about values rather than where they come from."""

from __future__ import annotations

from collections.abc import Sequence

from shared.pg.masking import ColumnPlan, CopyFormat, ResultMasker, StatementRef
from shared.pg.wire.messages import Field


def plain(fields: Sequence[Field]) -> StatementRef:
    """A statement whose columns are constants named like ``fields``: lineage finds no source column, so
    only detectors and rules on result names apply."""
    return StatementRef("SELECT " + ", ".join(f'NULL AS "{f.name}"' for f in fields))


def plan_for(masker: ResultMasker, fields: Sequence[Field]) -> ColumnPlan:
    return masker.on_row_description(fields, plain(fields))


def plain_copy(kind: str = "text") -> CopyFormat:
    """A COPY TO STDOUT whose fields, however many, have no source column (a built-in set-returning
    function over a constant)."""
    options = "" if kind == "text" else f" (FORMAT {kind})"
    sql = f"COPY (SELECT * FROM pg_catalog.unnest(ARRAY[1])) TO STDOUT{options}"
    return CopyFormat(kind, statement=StatementRef(sql))
