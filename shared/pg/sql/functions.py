"""Which function calls have effects a SELECT would hide.

A built-in that only computes a value is harmless; the ones below reach outside the query: they signal or
kill backends, read the server's file system, move large objects to and from server files, talk to other
servers, change settings or the WAL, hold locks beyond the statement, or stall the server. Anything that is
not a known built-in is *opaque*: its body could do anything, so rules decide about it by kind or name.
"""

from __future__ import annotations

from shared.pg.sql.pg_builtins import BUILTIN_FUNCTIONS

SIDE_EFFECT_FUNCTIONS: frozenset[str] = frozenset(
    {
        # Backends: signal, cancel, terminate; memory-context dumps into the server log.
        "pg_terminate_backend", "pg_cancel_backend", "pg_log_backend_memory_contexts",
        # Server file system (superuser or pg_read_server_files): read files, list directories.
        "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "pg_ls_logdir", "pg_ls_waldir",
        "pg_ls_tmpdir", "pg_ls_archive_statusdir", "pg_ls_logicalmapdir", "pg_ls_logicalsnapdir",
        "pg_ls_replslotdir", "pg_ls_summariesdir", "pg_current_logfile",
        # adminpack (older servers): write, rename and remove server files.
        "pg_file_write", "pg_file_rename", "pg_file_unlink", "pg_file_sync", "pg_logdir_ls",
        # Large objects: lo_import/lo_export read and write server files; the rest write pg_largeobject.
        "lo_import", "lo_export", "lo_unlink", "lo_create", "lo_creat", "lo_from_bytea", "lo_put",
        "lo_open", "lowrite", "lo_truncate", "lo_truncate64",
        # Other servers: dblink and postgres_fdw helpers run arbitrary SQL elsewhere.
        "dblink", "dblink_exec", "dblink_connect", "dblink_connect_u", "dblink_send_query",
        "dblink_open", "dblink_fetch", "dblink_disconnect", "postgres_fdw_disconnect",
        "postgres_fdw_disconnect_all",
        # Settings and server control.
        "pg_reload_conf", "pg_rotate_logfile", "pg_switch_wal", "pg_create_restore_point",
        "pg_promote", "pg_wal_replay_pause", "pg_wal_replay_resume", "pg_backup_start", "pg_backup_stop",
        "pg_log_standby_snapshot", "pg_logical_emit_message", "pg_import_system_collations",
        "pg_stat_reset", "pg_stat_reset_shared", "pg_stat_reset_single_table_counters",
        "pg_stat_reset_single_function_counters", "pg_stat_reset_slru", "pg_stat_reset_replication_slot",
        "pg_stat_reset_subscription_stats", "pg_stat_reset_backend_stats",
        "pg_restore_relation_stats", "pg_restore_attribute_stats", "pg_clear_relation_stats",
        "pg_clear_attribute_stats",
        # Replication slots and origins: a forgotten slot retains WAL until the disk fills.
        "pg_create_physical_replication_slot", "pg_create_logical_replication_slot",
        "pg_drop_replication_slot", "pg_copy_physical_replication_slot", "pg_copy_logical_replication_slot",
        "pg_replication_slot_advance", "pg_logical_slot_get_changes", "pg_logical_slot_get_binary_changes",
        "pg_replication_origin_create", "pg_replication_origin_drop", "pg_replication_origin_advance",
        "pg_replication_origin_session_setup", "pg_sync_replication_slots",
        # Sequences and notifications: writes a SELECT can make. nextval is everyday usage, setval is not.
        "setval", "pg_notify",
        # Locks that outlive the statement (session advisory locks). (pg_sleep is not here: it stalls
        # only its own session, which statement_timeout and cancel already govern.)
        "pg_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock",
        "pg_try_advisory_lock_shared",
        # BRIN maintenance.
        "brin_summarize_new_values", "brin_summarize_range", "brin_desummarize_range",
        "gin_clean_pending_list",
    }
)

# Built-ins that run SQL given as text: the text is classified like a statement of its own.
SQL_TEXT_FUNCTIONS: frozenset[str] = frozenset(
    {"query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema", "ts_stat", "ts_rewrite"}
)

# Built-ins that read a whole relation, schema or database named by their argument.
RELATION_FUNCTIONS: frozenset[str] = frozenset(
    {
        "table_to_xml", "table_to_xmlschema", "table_to_xml_and_xmlschema", "schema_to_xml",
        "schema_to_xmlschema", "schema_to_xml_and_xmlschema", "database_to_xml", "database_to_xmlschema",
        "database_to_xml_and_xmlschema",
    }
)

# set_config() is SET by another name (classified as such); these parameters change who the session is.
IDENTITY_SETTINGS: dict[str, str] = {"role": "set_role", "session_authorization": "set_session_authorization"}


def is_builtin(schema: str | None, name: str) -> bool:
    """A pg_catalog function (unqualified names resolve there first unless shadowed via search_path)."""
    return schema in (None, "pg_catalog") and name in BUILTIN_FUNCTIONS
