"""Masking inside free text: the detectors' matches in a string replaced by the policy's action.

What every protocol without result columns uses (a Kubernetes ConfigMap value, a log line, terminal
output): one ``detectors.find`` pass, then each confirmed match replaced as the policy says (redact, partial,
token). ``found`` names what was masked, one detector name per value, for the session's mask counts.
"""

from __future__ import annotations

from collections import Counter

from shared.masking.actions import Tokenizer, mask_text
from shared.masking.detectors import Match, candidates, find, normalize
from shared.masking.rules import MaskAction, MaskingPolicy

_SURROGATE = "surrogateescape"
# No detector confirms a value shorter than this ("a@b.io"; cards, SSNs, keys and tokens are longer).
SHORTEST_VALUE = 6


class TextMasker:
    """Masks detector matches in strings under one masking policy (its detectors and their actions)."""

    def __init__(self, policy: MaskingPolicy, token_key: bytes | None = None) -> None:
        self.actions = {d: a for d, a in policy.detectors.items() if a is not MaskAction.OFF}
        self.enabled = frozenset(self.actions)
        self.tokens = Tokenizer(token_key)
        self.found: Counter[str] = Counter()

    def matches(self, text: str) -> list[Match]:
        """The confirmed matches of the enabled detectors in ``text``, left to right."""
        return find(text, self.enabled) if self.enabled else []

    def mask(self, text: str) -> str:
        """``text`` with every match replaced (the same object when nothing matched)."""
        if not self.enabled or len(text) < SHORTEST_VALUE or not candidates(text.encode("utf-8", _SURROGATE)):
            return text
        return self.replace(text, self.matches(text))

    def replace(self, text: str, matches: list[Match], start: int = 0) -> str:
        """``text`` with ``matches`` replaced; a match that begins before ``start`` is replaced from there
        on (the part before was already sent and cannot be taken back)."""
        if not matches:
            return text
        parts: list[str] = []
        pos = 0
        for m in matches:
            begin = max(m.start, start)
            if begin >= m.end:
                continue
            parts.append(text[pos:begin])
            found = text[m.start : m.end]
            action = self.actions[m.detector]
            replacement = mask_text(action, found, normalize(m.detector, found), self.tokens)
            if begin > m.start:  # only the unsent tail of the value is ours to replace
                replacement = replacement[-(m.end - begin) :] if action is MaskAction.PARTIAL else "****"
            parts.append(replacement)
            self.found[m.detector.value] += 1
            pos = m.end
        parts.append(text[pos:])
        return "".join(parts)

    def mask_bytes(self, data: bytes) -> bytes:
        """``mask`` on UTF-8 bytes (bytes that are not UTF-8 are kept as they are)."""
        if not self.enabled or not candidates(data):
            return data
        text = data.decode("utf-8", _SURROGATE)
        masked = self.replace(text, self.matches(text))
        return data if masked is text else masked.encode("utf-8", _SURROGATE)

    def take_counts(self) -> dict[str, int]:
        """What was masked since the last call, per detector."""
        counts = dict(self.found)
        self.found.clear()
        return counts

