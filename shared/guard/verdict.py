"""The actions a rule can take."""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    HOLD = "hold"
