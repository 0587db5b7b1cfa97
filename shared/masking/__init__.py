"""Result masking: detectors, column-name rules, and the wire-level masker."""

from shared.masking.detectors import Detector, Match, find, is_card_number
from shared.masking.engine import ColumnPlan, CopyFormat, ResultMasker, UndecodableCopyData
from shared.masking.rules import ColumnRule, MaskAction, MaskingPolicy

__all__ = [
    "ColumnPlan", "ColumnRule", "CopyFormat", "Detector", "MaskAction", "MaskingPolicy", "Match", "ResultMasker",
    "UndecodableCopyData", "find", "is_card_number",
]
