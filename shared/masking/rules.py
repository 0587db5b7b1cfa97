"""The policy's ``masking`` section: which detectors run, what each does, and column-name rules.

```yaml
masking:
  enabled: true
  token_key_ref: airlock/masking-token-key   # secret holding the HMAC key for "token"
  detectors:                                 # per detector: redact | partial | token | off
    card: partial
    email: token
  columns:                                   # first matching glob wins; compared case-insensitively
    - {name: "*card*", action: partial}
    - {name: ssn, action: redact}
```
Column rules apply to every value of a covered column whatever it holds, and follow it: a result column
computed from a covered column is masked whole (see shared/pg/masking/lineage.py and docs/policy.md);
detectors apply inside any value.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.masking.detectors import Detector


class MaskAction(StrEnum):
    REDACT = "redact"  # "****" (a number: 0)
    PARTIAL = "partial"  # keep the last 4 letters/digits, keep separators and length
    TOKEN = "token"  # deterministic keyed token (HMAC-SHA256): joins and counts still work
    OFF = "off"


_DEFAULT_DETECTORS: dict[Detector, MaskAction] = {d: MaskAction.REDACT for d in Detector} | {
    Detector.CARD: MaskAction.PARTIAL,
    Detector.IBAN: MaskAction.PARTIAL,
}


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ColumnRule(_Strict):
    # fnmatch glob on a source column's name (any relation's column, followed through the statement) and
    # on the result column's name as RowDescription reports it.
    name: str = Field(min_length=1)
    action: MaskAction

    @field_validator("name")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


class MaskingPolicy(_Strict):
    enabled: bool = True
    # A reference (secret name / ARN) to the tokenization key; the proxy resolves it to bytes.
    token_key_ref: str | None = None
    detectors: dict[Detector, MaskAction] = Field(default_factory=lambda: dict(_DEFAULT_DETECTORS))
    columns: list[ColumnRule] = Field(default_factory=list)

    @field_validator("detectors")
    @classmethod
    def _complete(cls, value: dict[Detector, MaskAction]) -> dict[Detector, MaskAction]:
        # Detectors a policy does not mention keep their default: new detectors protect old policies.
        return _DEFAULT_DETECTORS | value

    @property
    def uses_tokens(self) -> bool:
        return MaskAction.TOKEN in self.detectors.values() or any(
            c.action is MaskAction.TOKEN for c in self.columns
        )
