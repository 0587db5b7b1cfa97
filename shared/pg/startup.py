"""Startup parameters are SETs: parse them as PostgreSQL does, and judge each one like the SET it is.

A StartupMessage carries settings two ways. ``options`` is a command line (libpq's ``options=``,
``PGOPTIONS``): split at unescaped whitespace, a backslash escaping the next character
(``pg_split_opts``), then read as switches where only ``-c name=value`` (or ``-cname=value``) and
``--name=value`` set anything (``process_postgres_switches``; ``ParseLongOption`` turns ``-`` in a name
into ``_``). Every other parameter except ``user``, ``database``, ``replication`` and the protocol's
``_pq_.*`` options is a setting too (asyncpg's ``server_settings``, ``application_name``, ``DateStyle``).
PostgreSQL applies ``options`` first and then the parameters, so a parameter wins over an option that
sets the same thing (names are case-insensitive).

Each setting is judged as ``SET "name" = 'value'`` by the session's guardrails, like any SET the agent
could send later, after a fixed list of settings that are never allowed whatever the policy says: the
session's role (``role``, ``session_authorization``), what changes how the server reads SQL text and so
what the guardrails judged (``standard_conforming_strings`` other than on, ``backslash_quote``), and what
loads code into the server (``local_preload_libraries``, ``session_preload_libraries``). A setting is
never dropped without a word: it is forwarded to the backend in its StartupMessage, or the connection is
refused with a FATAL that names it. Sans-I/O: the proxy does the reading and writing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

# Parameters of the StartupMessage that are not settings.
NOT_SETTINGS = frozenset({"user", "database", "replication", "options"})
PROTOCOL_OPTION_PREFIX = "_pq_."
_SPACE = " \t\n\r\f\v"  # C isspace() in the C locale, as pg_split_opts reads the string

_ROLE = "it changes the role the session runs as"
_LEXING = "it changes how the server reads SQL text, and so what Airlock's guardrails judge"
_CODE = "it loads code into the server"
_NEVER: Mapping[str, str] = {
    "role": _ROLE,
    "session_authorization": _ROLE,
    "backslash_quote": _LEXING,
    "local_preload_libraries": _CODE,
    "session_preload_libraries": _CODE,
}


class StartupOptionsError(ValueError):
    """The ``options`` string is not a command line PostgreSQL would accept, or asks for something the proxy
    does not relay. ``sqlstate`` is what the agent gets; the message quotes only the offending switch."""

    def __init__(self, message: str, sqlstate: str = "42601") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


@dataclass(frozen=True, slots=True)
class StartupSetting:
    name: str  # as it will be forwarded (options: with ParseLongOption's '-' -> '_')
    value: str
    origin: str  # "options" or "parameter": where the agent put it

    @property
    def key(self) -> str:
        """PostgreSQL's identity of a setting: names are case-insensitive."""
        return self.name.lower()

    def as_sql(self) -> str:
        """The SET this setting is (for judging; the backend gets the startup parameter itself)."""
        return f"SET {quote_ident(self.name)} = {quote_literal(self.value)}"  # "a.b" names a.b, as a.b does

    def describe(self) -> str:
        return f'"{self.name}"' + (" (in options)" if self.origin == "options" else "")


class SettingJudge(Protocol):
    """What the guardrails say about one SET: None if allowed, else why not (shown to the agent)."""

    def __call__(self, sql: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class StartupVerdict:
    allowed: dict[str, str]  # name -> value, in the order the backend applies them
    refused: StartupSetting | None = None
    reason: str = ""

    def message(self) -> str:
        assert self.refused is not None
        what = self.refused.describe()
        return f"Airlock refused the connection: the startup setting {what} is not allowed: {self.reason}"


def split_options(options: str) -> list[str]:
    """``pg_split_opts``: words at unescaped whitespace; a backslash escapes the next character."""
    words: list[str] = []
    i, n = 0, len(options)
    while i < n:
        while i < n and options[i] in _SPACE:
            i += 1
        if i >= n:
            break
        word: list[str] = []
        escaped = False
        while i < n:
            ch = options[i]
            if ch in _SPACE and not escaped:
                break
            if ch == "\\" and not escaped:
                escaped = True
            else:
                escaped = False
                word.append(ch)
            i += 1
        words.append("".join(word))
    return words


def parse_options(options: str) -> list[tuple[str, str]]:
    """The (name, value) pairs an ``options`` string sets, in order; ``StartupOptionsError`` otherwise."""
    pairs = []
    words = split_options(options)
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("--"):
            if word == "--":
                raise StartupOptionsError('invalid command-line argument in options: "--" with no setting')
            pairs.append(_long_option(word[2:], "--"))
        elif word.startswith("-c"):
            argument = word[2:]
            if not argument:
                i += 1
                if i == len(words):
                    raise StartupOptionsError("option requires an argument in options: -c")
                argument = words[i]
            pairs.append(_long_option(argument, "-c "))
        elif word.startswith("-") and len(word) > 1:
            raise StartupOptionsError(
                f"Airlock relays only settings in options (-c name=value or --name=value), not -{word[1]}",
                sqlstate="0A000",
            )
        else:
            raise StartupOptionsError(f"invalid command-line argument in options: {word[:64]!r}")
        i += 1
    return pairs


def _long_option(argument: str, switch: str) -> tuple[str, str]:
    """``ParseLongOption``: ``name=value``, with '-' in the name read as '_'."""
    name, equals, value = argument.partition("=")
    if not equals:
        raise StartupOptionsError(f"{switch}{argument[:64]} requires a value")
    name = name.replace("-", "_")
    if not name:
        raise StartupOptionsError(f"{switch}={value[:64]}: a setting needs a name")
    return name, value


def startup_settings(params: Mapping[str, str]) -> list[StartupSetting]:
    """Every setting of a StartupMessage, ``options`` first (PostgreSQL's order)."""
    settings = [StartupSetting(name, value, "options") for name, value in parse_options(params.get("options", ""))]
    settings += [
        StartupSetting(name, value, "parameter")
        for name, value in params.items()
        if name not in NOT_SETTINGS and not name.startswith(PROTOCOL_OPTION_PREFIX)
    ]
    return settings


def judge_startup(settings: list[StartupSetting], judge: SettingJudge | None) -> StartupVerdict:
    """Allowed settings, or the first one refused and why. ``judge`` is None when nothing judges SETs
    (no guardrails in the grant): only the fixed refusals apply then."""
    allowed: dict[str, tuple[str, str]] = {}
    for setting in settings:
        reason = never_allowed(setting)
        if reason is None and judge is not None:
            reason = judge(setting.as_sql())
        if reason is not None:
            return StartupVerdict(allowed={}, refused=setting, reason=reason)
        allowed.pop(setting.key, None)  # a later one of the same name wins, as on the server
        allowed[setting.key] = (setting.name, setting.value)
    return StartupVerdict(allowed=dict(allowed.values()))


def never_allowed(setting: StartupSetting) -> str | None:
    """Why a setting is refused whatever the policy says, if it is."""
    key = setting.key
    if not key:
        return "a setting needs a name"
    if key in NOT_SETTINGS or key.startswith(PROTOCOL_OPTION_PREFIX):
        return "it is not a setting"
    if key in _NEVER:
        return _NEVER[key]
    if key == "standard_conforming_strings" and not parse_bool(setting.value):
        return _LEXING
    return None


def parse_bool(value: str) -> bool | None:
    """PostgreSQL's ``parse_bool``: true/false, yes/no, on/off, 1/0 and unique prefixes of them."""
    v = value.lower()
    if not v:
        return None
    if v in ("1", "0"):
        return v == "1"
    if v.startswith("o") and len(v) < 2:
        return None  # "o": on or off
    for word, meaning in (("true", True), ("yes", True), ("on", True), ("false", False), ("no", False), ("off", False)):
        if word.startswith(v):
            return meaning
    return None


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """A standard-conforming string literal (backslashes are plain characters in it)."""
    return "'" + value.replace("'", "''") + "'"
