"""What the masker knows of the target's schema: relations, their columns, view definitions.

Column rules are written against column *names*, but a result can name a column anything, and a view or
``SELECT *`` hides which columns it reads. Lineage (``lineage.py``) therefore needs the target's catalog:
for every relation its kind, its columns by attribute number (RowDescription names a column by table oid
and attnum) and, for views and materialized views, the definition (``pg_get_viewdef``) whose own lineage
is computed in turn. The proxy reads it with ``CATALOG_QUERY`` over a side connection (proxy/pg/catalog.py)
and builds a ``Catalog`` from the one JSON document the query returns.

A ``Catalog`` is immutable; a refresh makes a new one with a higher ``generation``, so plans and lineage
cached under an older catalog are never reused under a newer one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

SYSTEM_SCHEMAS = frozenset({"pg_catalog", "information_schema"})
# System views and catalogs that hold sample *values* of user columns (planner statistics): reading them
# is reading the column, so their columns have unknown lineage.
DATA_EXPOSING = frozenset({"pg_stats", "pg_stats_ext", "pg_stats_ext_exprs", "pg_statistic", "pg_statistic_ext_data"})
# Relation kinds (pg_class.relkind) whose rows are computed from a definition.
DEFINED_KINDS = frozenset({"v", "m"})

# One document: every relation (tables, views, materialized views, foreign and partitioned tables) with
# its attributes, view definitions outside the system schemas, and the names of functions defined outside
# pg_catalog (they can shadow a built-in through search_path, so such a name is never taken for one).
CATALOG_QUERY = """
SELECT json_build_object(
  'relations', (
    SELECT coalesce(json_agg(json_build_array(
             c.oid, n.nspname, c.relname, c.relkind,
             (SELECT coalesce(json_agg(json_build_array(a.attnum, a.attname, a.atttypid, a.attisdropped,
                                                        a.attgenerated <> '') ORDER BY a.attnum), '[]')
                FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0),
             CASE WHEN c.relkind IN ('v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                  THEN pg_catalog.pg_get_viewdef(c.oid) END)), '[]')
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'v', 'm', 'f', 'p') AND n.nspname <> 'pg_toast'),
  'functions', (
    SELECT coalesce(json_agg(DISTINCT p.proname), '[]')
      FROM pg_catalog.pg_proc p
     WHERE p.pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace))
)::text
"""


@dataclass(frozen=True, slots=True)
class Attribute:
    name: str
    type_oid: int
    generated: bool = False


@dataclass(frozen=True, slots=True)
class Relation:
    oid: int
    schema: str
    name: str
    kind: str  # pg_class.relkind: r, v, m, f, p
    attributes: tuple[Attribute | None, ...]  # by attnum - 1; None where a column was dropped
    definition: str | None = None  # views and materialized views outside the system schemas

    @property
    def system(self) -> bool:
        return self.schema in SYSTEM_SCHEMAS

    @property
    def columns(self) -> tuple[Attribute, ...]:
        """The columns ``SELECT *`` shows, in order."""
        return tuple(a for a in self.attributes if a is not None)

    def attribute(self, attnum: int) -> Attribute | None:
        return self.attributes[attnum - 1] if 0 < attnum <= len(self.attributes) else None


@dataclass(frozen=True, slots=True)
class Catalog:
    """One snapshot of the target's relations (sans-I/O; see ``from_json``)."""

    relations: tuple[Relation, ...] = ()
    functions: frozenset[str] = frozenset()  # function names defined outside pg_catalog
    generation: int = 0
    _by_oid: dict[int, Relation] = field(default_factory=dict, repr=False, compare=False)
    _by_name: dict[str, tuple[Relation, ...]] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name: dict[str, list[Relation]] = {}
        for rel in self.relations:
            self._by_oid[rel.oid] = rel
            by_name.setdefault(rel.name, []).append(rel)
        self._by_name.update({name: tuple(rels) for name, rels in by_name.items()})

    @classmethod
    def from_json(cls, document: str, generation: int) -> Catalog:
        """The catalog from ``CATALOG_QUERY``'s one value. Raises ValueError if it is malformed."""
        try:
            data: dict[str, Any] = json.loads(document)
            relations = tuple(_relation(row) for row in data["relations"])
            functions = frozenset(str(name) for name in data["functions"])
        except (KeyError, TypeError, IndexError, json.JSONDecodeError) as e:
            raise ValueError(f"malformed catalog document: {e}") from e
        return cls(relations, functions, generation)

    def named(self, schema: str | None, name: str) -> tuple[Relation, ...]:
        """Every relation a name can mean. Unqualified: in any schema, since the session's search_path
        (and pg_temp) decide which one, and any of them may be the one; qualified: that schema only."""
        candidates = self._by_name.get(name, ())
        if schema is None:
            return candidates
        if schema == "pg_temp":
            return tuple(r for r in candidates if r.schema.startswith("pg_temp_"))
        return tuple(r for r in candidates if r.schema == schema)

    def by_oid(self, oid: int) -> Relation | None:
        return self._by_oid.get(oid)

    def shadows(self, function: str) -> bool:
        """A function of this name exists outside pg_catalog (it may be what an unqualified call means)."""
        return function in self.functions


def _relation(row: list[Any]) -> Relation:
    oid, schema, name, kind, attributes, definition = row
    slots: list[Attribute | None] = []
    for attnum, attname, type_oid, dropped, generated in attributes:
        while len(slots) < attnum - 1:  # attnums are dense; be safe anyway
            slots.append(None)
        slots.append(None if dropped else Attribute(str(attname), int(type_oid), bool(generated)))
    return Relation(int(oid), str(schema), str(name), str(kind), tuple(slots), definition)


def catalog_of(relations: Iterable[Relation], functions: Iterable[str] = (), generation: int = 1) -> Catalog:
    """A catalog built in code (tests, benchmarks)."""
    return Catalog(tuple(relations), frozenset(functions), generation)


class CatalogView(Protocol):
    """Where a masker reads the current catalog (the proxy's side connection keeps it fresh)."""

    @property
    def snapshot(self) -> Catalog | None:
        """The latest catalog; None when it could not be read (lineage through relations is unknown)."""
        ...

    def invalidate(self) -> None:
        """The schema may have changed: read the catalog again before it is next needed."""
        ...

    def unknown_relation(self, oid: int) -> None:
        """A result came from a relation the catalog lacks: read it again (unless that was just done)."""
        ...


class FixedCatalog:
    """A catalog that never changes (tests, benchmarks, in-process tools)."""

    def __init__(self, snapshot: Catalog | None) -> None:
        self._snapshot = snapshot
        self.invalidations = 0

    @property
    def snapshot(self) -> Catalog | None:
        return self._snapshot

    def invalidate(self) -> None:
        self.invalidations += 1

    def unknown_relation(self, oid: int) -> None:
        self.invalidations += 1
