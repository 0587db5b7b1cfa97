"""What a statement does: its kind, and each of its effects (a relation read or written, a function called,
or the statement itself when it touches no relation). Rules judge effects one by one (``engine``)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class StatementKind(StrEnum):
    """The effect class of a statement; also used for each nested effect."""

    SELECT = "select"
    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"
    UPDATE_NO_WHERE = "update_no_where"
    DELETE_NO_WHERE = "delete_no_where"
    MERGE = "merge"
    COPY_TO_CLIENT = "copy_to_client"
    COPY_FROM_CLIENT = "copy_from_client"
    COPY_PROGRAM = "copy_program"
    COPY_SERVER_FILE = "copy_server_file"
    DDL_CREATE = "ddl_create"
    DDL_ALTER = "ddl_alter"
    DROP = "drop"
    TRUNCATE = "truncate"
    GRANT = "grant"
    REVOKE = "revoke"
    ROLE_ADMIN = "role_admin"
    CREATE_FUNCTION = "create_function"
    DO_BLOCK = "do_block"
    CALL = "call"
    SET_ROLE = "set_role"
    SET_SESSION_AUTHORIZATION = "set_session_authorization"
    ALTER_SYSTEM = "alter_system"
    LOAD = "load"
    SET = "set"
    SHOW = "show"
    TRANSACTION = "transaction"
    PREPARE = "prepare"
    EXECUTE = "execute"
    DEALLOCATE = "deallocate"
    EXPLAIN = "explain"
    EXPLAIN_ANALYZE = "explain_analyze"
    CURSOR = "cursor"
    LISTEN = "listen"
    NOTIFY = "notify"
    VACUUM = "vacuum"
    ANALYZE = "analyze"
    MAINTENANCE = "maintenance"
    LOCK = "lock"
    # A call to a built-in function with side effects (pg_terminate_backend, pg_read_file, ...).
    SIDE_EFFECT_FUNCTION = "side_effect_function"
    # A call to a function Airlock cannot see into (user-defined, extension): rules decide.
    OPAQUE_FUNCTION = "opaque_function"
    # A call to a built-in that only computes a value (lower, now, count, pg_sleep ...): it changes
    # nothing, so it is allowed unless a rule names it (``functions``) and decides otherwise.
    FUNCTION = "function"
    UNKNOWN = "unknown"


# Kinds that change data or schema; a convenience for rules and reports ("is this read-only?").
WRITE_KINDS: frozenset[StatementKind] = frozenset(
    {
        StatementKind.INSERT, StatementKind.UPDATE, StatementKind.DELETE, StatementKind.UPDATE_NO_WHERE,
        StatementKind.DELETE_NO_WHERE, StatementKind.MERGE, StatementKind.COPY_FROM_CLIENT,
        StatementKind.COPY_PROGRAM, StatementKind.COPY_SERVER_FILE, StatementKind.DDL_CREATE,
        StatementKind.DDL_ALTER, StatementKind.DROP, StatementKind.TRUNCATE, StatementKind.GRANT,
        StatementKind.REVOKE, StatementKind.ROLE_ADMIN, StatementKind.CREATE_FUNCTION,
        StatementKind.ALTER_SYSTEM,
    }
)


# Kinds that change nothing persistent and nothing outside the session: what ``access: read_only``
# admits. SET and DISCARD change only the session's own settings (the settings that change how SQL is
# lexed are judged separately, see docs/policy.md); PREPARE and EXECUTE are judged by what they prepare
# and run; EXPLAIN ANALYZE and cursors by their query's own effects, which are effects of the statement.
READ_ONLY_KINDS: frozenset[StatementKind] = frozenset(
    {
        StatementKind.SELECT, StatementKind.COPY_TO_CLIENT, StatementKind.SHOW, StatementKind.EXPLAIN,
        StatementKind.EXPLAIN_ANALYZE, StatementKind.TRANSACTION, StatementKind.CURSOR, StatementKind.PREPARE,
        StatementKind.EXECUTE, StatementKind.DEALLOCATE, StatementKind.LISTEN, StatementKind.SET,
        StatementKind.FUNCTION,
    }
)

# Settings whose change an ``access: read_only`` session may not make: they switch off the server's own
# read-only guard (a role or database default), which stays in force as defence in depth.
READ_ONLY_SETTINGS = frozenset({"default_transaction_read_only", "transaction_read_only"})

# Built-ins that are everyday usage (so not side-effect functions) but write: a read-only session refuses them.
WRITING_BUILTINS = frozenset({"nextval", "pg_advisory_xact_lock", "pg_try_advisory_xact_lock",
                              "pg_advisory_xact_lock_shared", "pg_try_advisory_xact_lock_shared"})

# A kind that is a special case of a broader one also counts as the broader kind for rules.
_IMPLIED: dict[StatementKind, frozenset[StatementKind]] = {
    StatementKind.UPDATE_NO_WHERE: frozenset({StatementKind.UPDATE_NO_WHERE, StatementKind.UPDATE}),
    StatementKind.DELETE_NO_WHERE: frozenset({StatementKind.DELETE_NO_WHERE, StatementKind.DELETE}),
}


_RUNS_UNSEEN_CODE = frozenset(
    {StatementKind.OPAQUE_FUNCTION, StatementKind.DO_BLOCK, StatementKind.CALL, StatementKind.UNKNOWN}
)
_LEXING = frozenset({"client_encoding", "standard_conforming_strings", "names", "*"})


class Access(StrEnum):
    READ = "read"
    WRITE = "write"


@dataclass(frozen=True, slots=True)
class TableRef:
    """A relation named by the statement; ``schema`` is None when the name was unqualified."""

    schema: str | None
    name: str
    access: Access

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


@dataclass(frozen=True, slots=True)
class Effect:
    """One thing a statement does, judged on its own: a relation read or written (``table``), a function
    called (``function``), or the statement itself when it touches no relation (neither)."""

    kind: StatementKind
    table: TableRef | None = None
    function: str | None = None  # lower-cased, schema-qualified as written
    setting: str | None = None  # SET / set_config() / a transaction mode: the run-time setting it changes

    @property
    def kinds(self) -> frozenset[StatementKind]:
        """The kinds a rule's ``kinds`` criterion sees (``delete_no_where`` is also ``delete``)."""
        return _IMPLIED.get(self.kind) or frozenset((self.kind,))

    @property
    def changes(self) -> bool:
        """Whether the effect can change anything (what ``access: write`` matches, ``read_only`` refuses)."""
        if self.table is not None and self.table.access is Access.WRITE:
            return True
        if self.setting in READ_ONLY_SETTINGS:
            return True  # switching off a server-side read-only guard is a step towards writing
        if self.function is not None and self.function.rpartition(".")[2] in WRITING_BUILTINS:
            return True
        return self.kind not in READ_ONLY_KINDS

    def describe(self) -> str:
        """For messages: "DELETE on customers", "call of pg_terminate_backend"."""
        if self.function is not None:
            return f"call of {self.function}()"
        label = self.kind.value.removesuffix("_no_where").replace("_", " ").upper()
        return f"{label} on {self.table.qualified}" if self.table is not None else label


@dataclass(frozen=True, slots=True)
class ClassifiedStatement:
    """One statement of a query string, classified by effect (the guardrail engine's input).

    ``effects`` lists every effect, nested ones included (a CTE that deletes, a side-effect function in a
    subquery, the body of EXPLAIN ANALYZE or of an EXECUTEd prepared statement); ``kinds`` is the set of
    their kinds plus ``kind``. ``span`` is the statement's (start, end) character offsets in the query string.
    """

    kind: StatementKind
    kinds: frozenset[StatementKind]
    text: str
    span: tuple[int, int]
    label: str  # command name for messages, e.g. "DROP TABLE"
    tables: tuple[TableRef, ...] = ()
    functions: tuple[str, ...] = ()  # lower-cased, schema-qualified as written
    name: str | None = None  # PREPARE / EXECUTE / DEALLOCATE target (None with DEALLOCATE ALL)
    body: ClassifiedStatement | None = None  # PREPAREd / EXPLAINed / DECLAREd statement
    copy_format: str | None = None  # "text", "csv" or "binary" for COPY
    error: str | None = None  # why the kind is unknown
    effects: tuple[Effect, ...] = ()
    # Run-time settings the statement may change, lower-cased: SET / RESET / set_config() names, "*" for
    # RESET ALL, DISCARD ALL and a transaction's end (it reverts SET LOCAL and rolled-back SETs).
    settings: tuple[str, ...] = ()

    @property
    def may_change_lexing(self) -> bool:
        """Whether running this may change how the server reads the SQL that follows: a setting that
        changes lexing, or code Airlock cannot see into (which can set anything)."""
        return bool(self.kinds & _RUNS_UNSEEN_CODE) or any(s in _LEXING for s in self.settings)

    @property
    def session_dependent(self) -> bool:
        """True when the verdict depends on session state (EXECUTE of a prepared statement)."""
        return self.kind is StatementKind.EXECUTE or (
            self.body is not None and self.body.kind is StatementKind.EXECUTE
        )


# The name for the classifier's output.
StatementVerdictInput = ClassifiedStatement
