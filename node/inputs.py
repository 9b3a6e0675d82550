"""Checks for numbers that arrive in requests, messages and files.

JSON gives Python integers of any size: ``float(10**400)`` raises OverflowError and
``math.isfinite(10**400)`` too, which used to escape handlers as HTTP 500. Every numeric
field goes through ``number`` instead; ``decimal_text`` is for numbers in URLs and query
strings (``str.isdigit`` accepts "²" and other Unicode digits that ``int`` then refuses or
reads oddly).
"""

from __future__ import annotations

import math

from node.errors import InputError


def number(
    value: object, name: str, lo: float, hi: float, error: type[Exception] = InputError
) -> float:
    """``value`` as a float within ``[lo, hi]``; ``error`` (4xx) for anything else: bools,
    strings, NaN, infinities, and integers too large for a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise error(f"{name} must be a number between {lo:g} and {hi:g}")
    if isinstance(value, int):
        if not lo <= value <= hi:  # compared exactly: no float conversion of a huge int
            raise error(f"{name} must be between {lo:g} and {hi:g}")
        return float(value)
    if not math.isfinite(value) or not lo <= value <= hi:
        raise error(f"{name} must be between {lo:g} and {hi:g}")
    return float(value)


def decimal_text(text: str, name: str, max_digits: int = 18) -> int:
    """A whole number written in ASCII digits (URL segments, query strings)."""
    if not text.isascii() or not text.isdecimal() or not 0 < len(text) <= max_digits:
        raise InputError(f"{name} must be a whole number of at most {max_digits} digits")
    return int(text)
