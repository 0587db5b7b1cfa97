"""Slack, both ways: the Web API calls Airlock makes (slack_sdk's WebClient) and the interaction payloads
Slack sends when someone clicks (verified with slack_sdk's SignatureVerifier, parsed with pydantic).

Web API calls used: ``chat.postMessage`` (announce), ``chat.update`` (rewrite the message in place),
``chat.postEphemeral`` (tell one refused clicker why) and ``users.info`` (a clicker's e-mail, when
approver groups or owners name people by e-mail). ``base_url`` is configuration: the local stack points
it at its stand-in. Calls are short (``slack_timeout_seconds``) and never retried here, so an interaction
answers within Slack's 3 seconds; a failed message update never undoes a recorded decision.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.signature import Clock, SignatureVerifier

from shared.approvals.model import Approver

_EMAIL_CACHE_SECONDS = 300.0


class SlackError(Exception):
    """A Slack Web API call failed (never carries the token)."""


class SlackCredentials(BaseModel):
    """The Slack app's secret (Secrets Manager, JSON). A bot token that is not one (the template's
    "unset") or a short signing secret is refused: nothing is announced and no click verifies."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    bot_token: str = Field(pattern=r"^xox[bp]-")
    signing_secret: str = Field(min_length=16)


class SlackWeb:
    """The slice of Slack's Web API Airlock uses; one WebClient per token, made on first use."""

    def __init__(self, credentials: Callable[[], SlackCredentials], base_url: str, timeout: int) -> None:
        self._credentials = credentials
        self._base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._timeout = timeout
        self._client: tuple[str, WebClient] | None = None
        self._emails: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def _web(self) -> WebClient:
        token = self._credentials().bot_token
        with self._lock:
            if self._client is None or self._client[0] != token:
                self._client = (token, WebClient(token=token, base_url=self._base_url, timeout=self._timeout))
            return self._client[1]

    def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = getattr(self._web(), method)(**kwargs)
        except SlackApiError as e:
            raise SlackError(f"Slack {method} failed: {e.response.get('error', 'error')}") from e
        except (SlackClientError, OSError, ValueError) as e:
            raise SlackError(f"Slack {method} failed: {type(e).__name__}") from e
        return dict(response.data) if isinstance(response.data, dict) else {}

    def post(self, channel: str, text: str, blocks: list[dict[str, Any]]) -> tuple[str, str]:
        """Post a message; returns (channel id, ts), which ``update`` needs."""
        data = self._call("chat_postMessage", channel=channel, text=text, blocks=blocks, unfurl_links=False)
        return str(data["channel"]), str(data["ts"])

    def update(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        self._call("chat_update", channel=channel, ts=ts, text=text, blocks=blocks)

    def ephemeral(self, channel: str, user: str, text: str) -> None:
        self._call("chat_postEphemeral", channel=channel, user=user, text=text)

    def email_of(self, user_id: str) -> str | None:
        """The user's e-mail as Slack knows it (cached a few minutes); None if Slack does not say."""
        now = time.monotonic()
        hit = self._emails.get(user_id)
        if hit and now - hit[0] < _EMAIL_CACHE_SECONDS:
            return hit[1]
        data = self._call("users_info", user=user_id)
        email = data.get("user", {}).get("profile", {}).get("email")
        found = str(email).lower() if email else None
        self._emails[user_id] = (now, found)
        return found


# ---------------------------------------------------------------------- interactions


class _Lenient(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class SlackUser(_Lenient):
    id: str
    username: str | None = None
    name: str | None = None


class SlackAction(_Lenient):
    action_id: str
    value: str = ""
    block_id: str | None = None


class SlackContainer(_Lenient):
    type: str = "message"
    message_ts: str | None = None
    channel_id: str | None = None


class SlackChannel(_Lenient):
    id: str


class BlockActions(_Lenient):
    """The ``block_actions`` interaction payload (the fields Airlock reads)."""

    type: str
    user: SlackUser
    actions: list[SlackAction] = Field(default_factory=list)
    container: SlackContainer = Field(default_factory=SlackContainer)
    channel: SlackChannel | None = None

    @property
    def channel_id(self) -> str | None:
        return self.container.channel_id or (self.channel.id if self.channel else None)


class BadInteraction(ValueError):
    """Not a well-formed interaction payload."""


def verify(signing_secret: str, body: str, headers: Mapping[str, str], clock: Callable[[], float] = time.time) -> bool:
    """Slack's v0 signature over ``v0:timestamp:body``, with the timestamp within five minutes."""
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp = lowered.get("x-slack-request-timestamp", "")
    if not timestamp.isdigit():
        return False
    verifier = SignatureVerifier(signing_secret, clock=_Clock(clock))
    return verifier.is_valid(body=body, timestamp=timestamp, signature=lowered.get("x-slack-signature"))


class _Clock(Clock):
    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now

    def now(self) -> float:
        return self._now()


def parse_interaction(body: str) -> BlockActions:
    """The ``payload=`` JSON of an ``application/x-www-form-urlencoded`` interaction request."""
    try:
        payload = parse_qs(body, strict_parsing=True).get("payload", [""])[0]
        return BlockActions.model_validate(json.loads(payload))
    except (ValueError, ValidationError) as e:
        raise BadInteraction("not a Slack interaction payload") from e


def clicker(interaction: BlockActions, email_of: Callable[[str], str | None]) -> Approver:
    """The approver behind a click: the Slack user id, and their e-mail if Slack will say."""
    user = interaction.user
    try:
        email = email_of(user.id)
    except SlackError:
        email = None  # membership by id still works; ownership by e-mail then fails closed
    return Approver(name=user.username or user.name or user.id, slack_user_id=user.id, email=email)

