"""``airlock audit query``: SQL over the audit lines and session manifests, on Athena in AWS and on DuckDB
over the same S3 objects locally (docs/audit-events.md)."""
