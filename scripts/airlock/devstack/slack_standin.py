"""A stand-in for Slack's servers (Slack cannot run here): the slice of the Web API Airlock calls, and a
record of everything it received.

Web API, as Slack serves it (``POST https://slack.com/api/<method>``): ``chat.postMessage``,
``chat.update``, ``chat.postEphemeral`` and ``users.info``. Arguments arrive as JSON or form-encoded
(``users.info`` also as a query string); the bot token as ``Authorization: Bearer``. Answers are Slack's
shapes: ``{"ok": true, "channel": "C...", "ts": "...", "message": {...}}`` and ``{"ok": false, "error":
"invalid_auth" | "not_authed" | "channel_not_found" | "message_not_found" | "user_not_found" |
"invalid_arguments"}`` (HTTP 200, as Slack does). Channels named ``#name`` get a stable id.

What it received, for tests and ``airlock dev approvals`` (not part of Slack's API, under ``/_standin``):
``GET /_standin/messages`` (each message as it now reads, with its update history),
``GET /_standin/ephemeral``, ``GET /_standin/users``.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

BOT_USER = "U0AIRLOCKBOT"


@dataclass(frozen=True, slots=True)
class SlackUser:
    id: str
    name: str
    email: str
    real_name: str = ""


@dataclass
class _Message:
    channel: str
    ts: str
    text: str
    blocks: list[Any]
    history: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"channel": self.channel, "ts": self.ts, "text": self.text, "blocks": self.blocks,
                "updates": len(self.history), "history": self.history}  # fmt: skip


class SlackStandIn:
    """State and request handling (the aiohttp app is ``app()``)."""

    def __init__(self, bot_token: str, users: list[SlackUser]) -> None:
        self._token = bot_token
        self._users = {u.id: u for u in users}
        self._channels: dict[str, str] = {}
        self._messages: dict[tuple[str, str], _Message] = {}
        self._ephemeral: list[dict[str, Any]] = []
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    # -------------------------------------------------------------- helpers

    def _ts(self) -> str:
        return f"{int(time.time())}.{next(self._seq):06d}"

    def _channel_id(self, channel: str, *, create: bool) -> str | None:
        if channel in self._channels.values():
            return channel
        name = channel.lstrip("#")
        if name not in self._channels and create:
            self._channels[name] = "C" + hashlib.sha256(name.encode()).hexdigest()[:10].upper()
        return self._channels.get(name)

    @staticmethod
    async def _arguments(request: web.Request) -> dict[str, Any]:
        args: dict[str, Any] = dict(request.query)
        raw = await request.read()
        if not raw:
            return args
        if request.content_type == "application/json":
            body = json.loads(raw)
            return {**args, **(body if isinstance(body, dict) else {})}
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        if isinstance(form.get("blocks"), str):
            form["blocks"] = json.loads(form["blocks"])
        return {**args, **form}

    def _authorized(self, request: web.Request, args: dict[str, Any]) -> str | None:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else args.get("token")
        if not token:
            return "not_authed"
        return None if token == self._token else "invalid_auth"

    # -------------------------------------------------------------- Web API methods

    def post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_id(str(args.get("channel", "")), create=True)
        if not channel or not (args.get("text") or args.get("blocks")):
            return {"ok": False, "error": "invalid_arguments" if channel else "channel_not_found"}
        message = _Message(channel, self._ts(), str(args.get("text", "")), list(args.get("blocks") or []))
        self._messages[(channel, message.ts)] = message
        return {"ok": True, "channel": channel, "ts": message.ts, "message": self._shape(message)}

    def update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_id(str(args.get("channel", "")), create=False)
        message = self._messages.get((channel or "", str(args.get("ts", ""))))
        if message is None:
            return {"ok": False, "error": "channel_not_found" if channel is None else "message_not_found"}
        message.history.append({"text": message.text, "blocks": message.blocks})
        message.text = str(args.get("text", message.text))
        message.blocks = list(args.get("blocks") or message.blocks)
        return {"ok": True, "channel": channel, "ts": message.ts, "text": message.text,
                "message": self._shape(message)}  # fmt: skip

    def post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_id(str(args.get("channel", "")), create=False)
        user = str(args.get("user", ""))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        if user not in self._users:
            return {"ok": False, "error": "user_not_in_channel"}
        ts = self._ts()
        self._ephemeral.append({"channel": channel, "user": user, "text": str(args.get("text", "")), "ts": ts})
        return {"ok": True, "message_ts": ts}

    def users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self._users.get(str(args.get("user", "")))
        if user is None:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "user": {"id": user.id, "name": user.name, "real_name": user.real_name or user.name,
                                     "profile": {"email": user.email, "real_name": user.real_name or user.name,
                                                 "display_name": user.name}}}  # fmt: skip

    @staticmethod
    def _shape(message: _Message) -> dict[str, Any]:
        return {"type": "message", "user": BOT_USER, "bot_id": "B0AIRLOCK", "text": message.text,
                "blocks": message.blocks, "ts": message.ts}  # fmt: skip

    # -------------------------------------------------------------- what it received

    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return [m.as_json() for m in sorted(self._messages.values(), key=lambda m: m.ts)]

    def ephemeral(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._ephemeral)

    def users(self) -> list[dict[str, str]]:
        return [{"id": u.id, "name": u.name, "email": u.email} for u in self._users.values()]

    # -------------------------------------------------------------- HTTP

    def app(self) -> web.Application:
        methods = {
            "chat.postMessage": self.post_message,
            "chat.update": self.update,
            "chat.postEphemeral": self.post_ephemeral,
            "users.info": self.users_info,
        }

        async def api(request: web.Request) -> web.Response:
            method = methods.get(request.match_info["method"])
            if method is None:
                return web.json_response({"ok": False, "error": "unknown_method"}, status=404)
            try:
                args = await self._arguments(request)
            except ValueError:
                return web.json_response({"ok": False, "error": "invalid_json"})
            refused = self._authorized(request, args)
            if refused:
                return web.json_response({"ok": False, "error": refused})
            with self._lock:
                return web.json_response(method(args))

        async def received(request: web.Request) -> web.Response:
            what = {"messages": self.messages, "ephemeral": self.ephemeral, "users": self.users}
            return web.json_response(what[request.match_info["what"]]())

        app = web.Application()
        app.router.add_route("*", "/api/{method}", api)
        app.router.add_get("/_standin/{what:messages|ephemeral|users}", received)
        return app


@dataclass
class RunningSlack:
    """The stand-in serving on its own event-loop thread; ``api_url`` is what ``WebClient(base_url=)`` takes."""

    url: str
    standin: SlackStandIn
    _loop: asyncio.AbstractEventLoop
    _runner: web.AppRunner
    _thread: threading.Thread

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


def start_slack_standin(bot_token: str, users: list[SlackUser], host: str = "127.0.0.1", port: int = 0) -> RunningSlack:
    standin = SlackStandIn(bot_token, users)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(standin.app(), access_log=None)

    async def start() -> str:
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        bound_host, bound_port = runner.addresses[0][:2]
        return f"http://{bound_host}:{bound_port}"

    thread = threading.Thread(target=loop.run_forever, name="slack-standin", daemon=True)
    thread.start()
    url = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    return RunningSlack(url, standin, loop, runner, thread)


# ---------------------------------------------------------------------- what Slack sends on a click


def find_button(
    messages: list[dict[str, Any]], value_prefix: str, action_id: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(message, button) of the newest message with a button ``action_id`` whose value starts with
    ``value_prefix``; ``LookupError`` if no message has one (decided already, or never announced)."""
    for message in reversed(messages):
        for block in message["blocks"]:
            elements = list(block.get("elements", [])) + ([block["accessory"]] if "accessory" in block else [])
            for element in elements:
                if element.get("action_id") == action_id and str(element.get("value", "")).startswith(value_prefix):
                    return message, {**element, "block_id": block.get("block_id", "")}
    raise LookupError(f"no message has a {action_id!r} button for {value_prefix}")


def block_actions_payload(
    message: dict[str, Any], button: dict[str, Any], user: SlackUser, channel_name: str
) -> dict[str, Any]:
    """The ``block_actions`` payload Slack posts when ``user`` clicks ``button`` on ``message``."""
    action_ts = f"{time.time():.6f}"
    return {
        "type": "block_actions",
        "user": {"id": user.id, "username": user.name, "name": user.name, "team_id": "T0AIRLOCK"},
        "api_app_id": "A0AIRLOCK",
        "token": "deprecated-verification-token",
        "container": {
            "type": "message", "message_ts": message["ts"], "channel_id": message["channel"], "is_ephemeral": False,
        },
        "trigger_id": f"{int(time.time())}.{abs(hash(action_ts)) % 10**12}",
        "team": {"id": "T0AIRLOCK", "domain": "airlock-local"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": message["channel"], "name": channel_name.lstrip("#")},
        "message": {
            "type": "message", "user": BOT_USER, "bot_id": "B0AIRLOCK", "ts": message["ts"],
            "text": message["text"], "blocks": message["blocks"],
        },
        "state": {"values": {}},
        "response_url": "http://127.0.0.1/standin-response-url-unused",
        "actions": [{
            "action_id": button["action_id"], "block_id": button["block_id"], "text": button["text"],
            "value": button.get("value", ""), "style": button.get("style"), "type": "button", "action_ts": action_ts,
        }],
    }


def signed_form(
    payload: dict[str, Any], signing_secret: str, timestamp: int | None = None
) -> tuple[str, dict[str, str]]:
    """(body, headers) exactly as Slack posts an interaction: a form with ``payload=<json>``, signed v0
    (HMAC-SHA256 of ``v0:<timestamp>:<body>``, slack_sdk's own signer)."""
    from urllib.parse import urlencode

    from slack_sdk.signature import SignatureVerifier

    body = urlencode({"payload": json.dumps(payload)})
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(signing_secret).generate_signature(timestamp=stamp, body=body) or ""
    return body, {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature,
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
    }
