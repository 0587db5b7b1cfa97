"""Masking of PostgreSQL results on the wire: column plans from RowDescription, DataRow, CopyData and
error fields; values read and replaced by their PostgreSQL type and format."""

from shared.pg.masking.engine import ColumnPlan, CopyFormat, ResultMasker, StatementRef, UndecodableCopyData

__all__ = ["ColumnPlan", "CopyFormat", "ResultMasker", "StatementRef", "UndecodableCopyData"]
