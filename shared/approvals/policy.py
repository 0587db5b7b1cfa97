"""The policy's ``approvals`` section: where held statements are announced and who may decide them.

```yaml
approvals:
  slack_channel: "#db-approvals"       # Block Kit message with Approve once / Approve for N minutes / Deny
  sns_topic_arn: arn:aws:sns:eu-west-1:123456789012:airlock-approvals   # signed approve/deny links
  timeout_seconds: 900                 # how long a held statement waits before it expires
  default_approvers: dba               # the group of a hold that names none (``default: hold`` too)
  approver_groups:                     # members: Slack user ids and/or e-mail addresses
    dba: [U012AB3CD, dana@example.com]
  allowances:                          # "Approve for N minutes"
    enabled: true
    minutes: 15                        # N on the Slack button
    max_minutes: 240                   # the most `airlock approvals approve ID --for` may grant
```

A hold rule names its group with ``approvers:`` (``shared.pg.sql.rules.GuardRule``). The members are
matched against who clicks (a Slack user id, or the e-mail Slack reports for that user) or who signs a
link / runs the CLI. Identities list their human ``owners`` (same forms); an owner never approves
requests of an identity they own. ``ApprovalsGrant`` is the part of this section a proxy needs (no
member lists): it travels in the session's grant.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

SLACK_USER_ID = r"^[UW][A-Z0-9]{2,31}$"
EMAIL = r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$"
_GROUP_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


def _normalize_member(value: str) -> str:
    # E-mail addresses compare case-insensitively; Slack ids are upper case by construction.
    return value.lower() if "@" in value else value


# A person who may approve (or who owns an identity): a Slack user id or an e-mail address.
Member = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=f"{SLACK_USER_ID}|{EMAIL}"),
    AfterValidator(_normalize_member),
]
GroupName = Annotated[str, StringConstraints(pattern=_GROUP_NAME)]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AllowancesPolicy(_Strict):
    """"Approve for N minutes": later statements with the same shape run without asking until then."""

    enabled: bool = True
    minutes: int = Field(default=15, ge=1, le=1440)
    max_minutes: int = Field(default=240, ge=1, le=1440)

    @model_validator(mode="after")
    def _minutes_within_max(self) -> AllowancesPolicy:
        if self.minutes > self.max_minutes:
            raise ValueError(f"allowances.minutes ({self.minutes}) exceeds allowances.max_minutes ({self.max_minutes})")
        return self


class ApprovalsGrant(_Strict):
    """What a proxy needs to hold statements for one session (travels in ``Grant.approvals``)."""

    slack_channel: str | None = None
    # True when approvers are also reached through SNS links (the topic itself stays in the control plane).
    sns: bool = False
    timeout_seconds: int = 900
    default_approvers: str | None = None
    allowances_enabled: bool = True
    allowance_minutes: int = 15

    def where(self) -> str:
        """Where the approvers are asked, for the agent's notice ("Slack #db-approvals and e-mail")."""
        places = [f"Slack {self.slack_channel}"] if self.slack_channel else []
        if self.sns:
            places.append("the SNS approvals topic")
        return " and ".join(places) or "nowhere (no channel configured)"


# "#name" or a channel id; SNS topic ARNs (standard topics: FIFO topics would deduplicate announcements).
SlackChannel = Annotated[str, StringConstraints(pattern=r"^(#[a-z0-9][a-z0-9_-]{0,79}|[CG][A-Z0-9]{2,31})$")]
TopicArn = Annotated[str, StringConstraints(pattern=r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$")]


class ApprovalsPolicy(_Strict):
    slack_channel: SlackChannel | None = None
    sns_topic_arn: TopicArn | None = None
    approver_groups: dict[GroupName, list[Member]] = Field(default_factory=dict)
    default_approvers: GroupName | None = None
    timeout_seconds: int = Field(default=900, ge=5, le=86400)
    allowances: AllowancesPolicy = Field(default_factory=AllowancesPolicy)

    @model_validator(mode="after")
    def _default_group_exists(self) -> ApprovalsPolicy:
        if self.default_approvers is not None and self.default_approvers not in self.approver_groups:
            raise ValueError(f"default_approvers: unknown approver group {self.default_approvers!r}")
        return self

    @property
    def reachable(self) -> bool:
        """Whether anyone can be told about a held statement at all."""
        return bool(self.slack_channel or self.sns_topic_arn)

    def members(self, group: str) -> frozenset[str]:
        return frozenset(self.approver_groups.get(group, ()))

    def grant(self) -> ApprovalsGrant:
        return ApprovalsGrant(
            slack_channel=self.slack_channel,
            sns=self.sns_topic_arn is not None,
            timeout_seconds=self.timeout_seconds,
            default_approvers=self.default_approvers,
            allowances_enabled=self.allowances.enabled,
            allowance_minutes=self.allowances.minutes,
        )
