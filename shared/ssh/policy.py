"""The policy file's SSH pieces: SSH targets, what a binding allows on one, and the command rules.

```yaml
targets:
  web-1:
    engine: ssh
    host: 10.0.0.5
    port: 22
    user: deploy                               # the account on the target
    credential_secret: airlock/targets/web-1   # Secrets Manager: {"private_key": "<PEM>"}
    host_keys: ["ssh-ed25519 AAAA..."]         # the target's known host keys (unknown/changed: refused)
bindings:
  - identity: ci-nightly
    target: web-1
    ssh: {allow: [exec, sftp], forward_to: []}
```
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.guard.verdict import Action

SshChannel = Literal["exec", "shell", "sftp", "scp", "port_forward"]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SshTargetSpec(_Strict):
    engine: Literal["ssh"]
    host: str = Field(min_length=1)
    port: int = Field(default=22, ge=1, le=65535)
    user: str = Field(min_length=1)
    # Secrets Manager id of a JSON secret {"private_key": "<OpenSSH or PEM private key>"}.
    credential_secret: str = Field(min_length=1)
    # OpenSSH public key lines of the target's host keys; a key not listed is refused.
    host_keys: list[str] = Field(min_length=1)


class SshAccess(_Strict):
    """What a binding allows on an SSH target. Agent forwarding and X11 are always refused."""

    allow: list[SshChannel] = Field(default_factory=lambda: list[SshChannel](["exec"]))
    # host:port destinations port forwarding may reach (none: port forwarding is refused).
    forward_to: list[str] = Field(default_factory=list)


class SshGuardrails(_Strict):
    """The ``ssh`` section: rules on commands (``shared/ssh``); judged like SQL (``shared/guard/verdict``)."""

    default: Action = Action.ALLOW
    unknown: Action = Action.DENY
    dry_run: bool = False
