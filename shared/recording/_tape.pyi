"""The compiled ``Tape`` (shared/recording/_tape.c): the same interface as its pure-Python twin."""

from .tape import TapePy as Tape

__all__ = ["Tape"]
