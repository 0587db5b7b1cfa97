"""Masking, protocol-neutral: the detectors of sensitive values, what each action does to a value, and the
policy's masking section. How a protocol's results are read and re-framed lives with the protocol
(``shared/pg/masking``)."""

from shared.masking.detectors import Detector, Match, find, is_card_number
from shared.masking.rules import ColumnRule, MaskAction, MaskingPolicy

__all__ = ["ColumnRule", "Detector", "MaskAction", "MaskingPolicy", "Match", "find", "is_card_number"]
