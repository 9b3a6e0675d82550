"""Checks for the values that arrive in requests, messages and files: one home per kind,
shared by HTTP, the event WebSocket and the p2p bridge (numbers, text, names).

JSON gives Python integers of any size: ``float(10**400)`` raises OverflowError and
``math.isfinite(10**400)`` too, which used to escape handlers as HTTP 500. Every numeric
field goes through ``number`` instead; ``decimal_text`` is for numbers in URLs and query
strings (``str.isdigit`` accepts "²" and other Unicode digits that ``int`` then refuses or
reads oddly).
"""

from __future__ import annotations

import math
import re
from typing import Any

from node.errors import InputError

PARTICIPANT_NAME_MAX = 32
"""A musician's display name, wherever it arrives (a join, a bridged join)."""
SESSION_NAME_MAX = 64
"""A session's (or a node's advertised) name."""
SESSION_ID_RE = re.compile(r"^[0-9A-Za-z]{1,32}$", re.ASCII)
"""Session ids are ASCII letters and digits (``str.isalnum`` would take "١٢" too)."""


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


def text(value: object, name: str, max_len: int) -> str:
    """``value`` as 1-``max_len`` printable characters once stripped."""
    if not isinstance(value, str):
        raise InputError(f"{name} must be a string")
    value = value.strip()
    if not 0 < len(value) <= max_len or not value.isprintable():
        raise InputError(f"{name} must be 1-{max_len} printable characters")
    return value


def field_text(body: dict[str, Any], key: str, max_len: int, default: str | None = None) -> str:
    """``body[key]`` (or ``default`` when absent) checked by ``text``."""
    return text(body.get(key, default), key, max_len)


def participant_name(value: object) -> str:
    """A musician's display name: 1-32 printable characters."""
    return text(value, "name", PARTICIPANT_NAME_MAX)


def session_id(value: object, error: type[Exception] = InputError) -> str:
    """A session id as it arrives in a URL, an advert or a bridge request."""
    if not isinstance(value, str) or not SESSION_ID_RE.match(value):
        raise error("a session id is 1-32 ASCII letters and digits")
    return value
