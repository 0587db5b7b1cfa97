"""Queries on DuckDB over the local stack's S3 objects: the same SQL and tables as Athena.

The tables are built from the Glue tables the local stack provisioned from template.yaml (columns,
types, location, the ``dt`` partition), as views over ``read_json`` of the same S3 objects Athena would
read. DuckDB reads S3 itself through its httpfs extension, loaded from the ``duckdb-extension-httpfs``
package for this duckdb version (nothing is downloaded at run time), pointed at the local endpoint
(``AWS_ENDPOINT_URL``) with the environment's credentials. A table whose location holds no object yet
is an empty table of the same columns.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .queries import QueryError
from .results import QueryResult

_SCALARS = {"string": "VARCHAR", "int": "INTEGER", "integer": "INTEGER", "bigint": "BIGINT", "double": "DOUBLE",
            "float": "FLOAT", "boolean": "BOOLEAN", "smallint": "SMALLINT", "tinyint": "TINYINT",
            "timestamp": "TIMESTAMP", "date": "DATE"}  # fmt: skip
_TOKEN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*|[<>:,])")


def duckdb_type(hive: str) -> str:
    """A Glue/Hive column type as DuckDB spells it: ``struct<a:string,b:array<int>>`` ->
    ``STRUCT("a" VARCHAR, "b" INTEGER[])``."""
    tokens = [m.group(1) for m in _TOKEN.finditer(hive)]
    position = 0

    def parse() -> str:
        nonlocal position
        name = tokens[position].lower()
        position += 1
        if name == "array":
            position += 1  # <
            inner = parse()
            position += 1  # >
            return f"{inner}[]"
        if name == "struct":
            position += 1  # <
            fields = []
            while tokens[position] != ">":
                field_name = tokens[position]
                position += 2  # name :
                fields.append(f'"{field_name}" {parse()}')
                if tokens[position] == ",":
                    position += 1
            position += 1  # >
            return f"STRUCT({', '.join(fields)})"
        if name not in _SCALARS:
            raise QueryError(f"column type {hive!r}: {name} is not supported locally")
        return _SCALARS[name]

    return parse()


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def httpfs_extension() -> Path:
    import duckdb
    import duckdb_extension_httpfs

    version = duckdb.__version__
    path = Path(duckdb_extension_httpfs.__file__).parent / "extensions" / f"v{version}" / "httpfs.duckdb_extension"
    if not path.exists():
        raise QueryError(f"duckdb-extension-httpfs has no build for duckdb {version}: install matching versions")
    return path


class DuckDbEngine:
    def __init__(self, database: str) -> None:
        import boto3
        import duckdb

        self.database = database
        self.connection = duckdb.connect(config={"autoinstall_known_extensions": False,
                                                 "autoload_known_extensions": False})
        self.connection.execute(f"LOAD {_sql_string(str(httpfs_extension()))}")
        session = boto3.session.Session()
        self._s3_secret(session)
        self._glue = session.client("glue")
        self._s3 = session.client("s3")
        self._create_tables()

    def _s3_secret(self, session: Any) -> None:
        credentials = session.get_credentials()
        if credentials is None:
            raise QueryError("no AWS credentials for the local S3 endpoint")
        frozen = credentials.get_frozen_credentials()
        region = session.region_name or "us-east-1"
        options = {"KEY_ID": frozen.access_key, "SECRET": frozen.secret_key, "REGION": region}
        if frozen.token:
            options["SESSION_TOKEN"] = frozen.token
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            url = urlparse(endpoint)
            options |= {"ENDPOINT": url.netloc, "URL_STYLE": "path", "USE_SSL": str(url.scheme == "https").lower()}
        settings = ", ".join(f"{k} {v if k == 'USE_SSL' else _sql_string(v)}" for k, v in options.items())
        self.connection.execute(f"CREATE SECRET airlock_s3 (TYPE s3, {settings})")

    def _create_tables(self) -> None:
        tables = [t for page in self._glue.get_paginator("get_tables").paginate(DatabaseName=self.database)
                  for t in page["TableList"]]
        if not tables:
            raise QueryError(f"Glue database {self.database!r} has no tables (is the local stack up?)")
        for table in tables:
            self.connection.execute(self._table_sql(table))

    def _table_sql(self, table: dict[str, Any]) -> str:
        name = table["Name"]
        columns = {c["Name"]: duckdb_type(c["Type"]) for c in table["StorageDescriptor"]["Columns"]}
        partitions = [p["Name"] for p in table.get("PartitionKeys", [])]
        location = urlparse(table["StorageDescriptor"]["Location"])
        bucket, prefix = location.netloc, location.path.lstrip("/")
        if not self._s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1).get("KeyCount", 0):
            declared = [f'"{c}" {t}' for c, t in columns.items()] + [f'"{p}" VARCHAR' for p in partitions]
            return f'CREATE TABLE "{name}" ({", ".join(declared)})'
        pattern = f"s3://{bucket}/{prefix}" + "".join(f"{p}=*/" for p in partitions) + "*"
        column_spec = ", ".join(f"{_sql_string(c)}: {_sql_string(t)}" for c, t in columns.items())
        hive_types = ", ".join(f"{_sql_string(p)}: 'VARCHAR'" for p in partitions)
        return (f'CREATE VIEW "{name}" AS SELECT * FROM read_json({_sql_string(pattern)}, '
                f"format = 'newline_delimited', hive_partitioning = {str(bool(partitions)).lower()}, "
                f"hive_types = {{{hive_types}}}, columns = {{{column_spec}}})")

    def run(self, sql: str, parameters: list[str] | None = None) -> QueryResult:
        import duckdb

        try:
            cursor = self.connection.execute(sql, parameters or [])
        except duckdb.Error as e:
            raise QueryError(f"DuckDB: {e}") from e
        columns = [d[0] for d in cursor.description or []]
        return QueryResult(columns, [list(row) for row in cursor.fetchall()])
