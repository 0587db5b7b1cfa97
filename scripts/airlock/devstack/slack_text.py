"""Block Kit as plain text: how ``airlock dev approvals`` shows what a Slack user would see."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

_MENTION = re.compile(r"<@([A-Z0-9]+)>")
_DATE = re.compile(r"<!date\^\d+\^[^|>]*\|([^>]*)>")
_LINK = re.compile(r"<([^|>]+)\|([^>]+)>")
_EMOJI = {":white_check_mark:": "[approved]", ":no_entry:": "[denied]", ":hourglass:": "[expired]",
          ":leftwards_arrow_with_hook:": "[withdrawn]", ":hourglass_flowing_sand:": "[waiting]",
          ":stopwatch:": "[allowance]", ":lock:": "[revoked]"}  # fmt: skip


def mrkdwn(text: str, users: Mapping[str, str]) -> str:
    """Slack mrkdwn as a terminal shows it: mentions by name, dates by their fallback, code indented."""
    text = _MENTION.sub(lambda m: f"@{users.get(m.group(1), m.group(1))}", text)
    text = _DATE.sub(lambda m: m.group(1), text)
    text = _LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})", text)
    for emoji, word in _EMOJI.items():
        text = text.replace(emoji, word)
    text = re.sub(r"```(.*?)```", lambda m: "\n".join("    " + line for line in m.group(1).splitlines()), text,
                  flags=re.DOTALL)  # fmt: skip
    return html.unescape(text.replace("\u200b", ""))


def _button(element: Mapping[str, Any]) -> str:
    return f"[ {element['text']['text']} ]"


def render(blocks: list[dict[str, Any]], users: Mapping[str, str]) -> str:
    """One message's blocks as lines of text."""
    out: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            title = block["text"]["text"]
            out += [title, "=" * len(title)]
        elif kind == "section":
            if "text" in block:
                out.append(mrkdwn(block["text"]["text"], users))
            for f in block.get("fields", []):
                label, _, value = mrkdwn(f["text"], users).partition("\n")
                out.append(f"{label.strip('*')}: {value}")
            if "accessory" in block and block["accessory"].get("type") == "button":
                out.append(_button(block["accessory"]))
        elif kind == "context":
            out.append("  " + " ".join(mrkdwn(e.get("text", ""), users) for e in block.get("elements", [])))
        elif kind == "actions":
            out.append(" ".join(_button(e) for e in block.get("elements", []) if e.get("type") == "button"))
    return "\n".join(out)
