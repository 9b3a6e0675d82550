"""How long a session lives when nobody uses it: pure decisions, no I/O.

A session costs the node a mix clock slot, a place among ``max_sessions`` and, with the
bandmate, a model thread. Without an end, one key could fill every slot and keep them (the
issue that brought this module: 64 slots filled in 31 s, sessions left running for hours).
Two rules, checked by the jam service every presence pass:

- **Empty**: no human in it (the bandmate does not count) for ``empty_expiry_s``: closed.
- **Ownerless**: the owner has been gone for ``ownerless_expiry_s``: the bandmate, which only
  the owner controls, stops; once nobody human is left either, the empty rule closes it.
  Musicians still playing keep their session: the owner can come back to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Expiry(Enum):
    """What to do with a session now."""

    KEEP = "keep"
    STOP_BANDMATE = "stop-bandmate"
    CLOSE = "close"


@dataclass
class Lifetime:
    """Since when a session has been empty and without its owner (monotonic seconds)."""

    empty_expiry_s: float
    ownerless_expiry_s: float
    empty_since: float | None = None
    owner_away_since: float | None = None

    def check(self, now: float, humans: int, owner_present: bool, bandmate: bool) -> Expiry:
        """One pass: ``humans`` present (not the bandmate), whether the owner is among them and
        whether a bandmate plays."""
        if humans:
            self.empty_since = None
        elif self.empty_since is None:
            self.empty_since = now
        if owner_present:
            self.owner_away_since = None
        elif self.owner_away_since is None:
            self.owner_away_since = now
        if self.empty_since is not None and now - self.empty_since >= self.empty_expiry_s:
            return Expiry.CLOSE
        if (
            bandmate
            and self.owner_away_since is not None
            and now - self.owner_away_since >= self.ownerless_expiry_s
        ):
            return Expiry.STOP_BANDMATE
        return Expiry.KEEP

    def seconds_left(self, now: float) -> float | None:
        """Until an empty session closes (None while someone is in it)."""
        if self.empty_since is None:
            return None
        return max(0.0, self.empty_expiry_s - (now - self.empty_since))
