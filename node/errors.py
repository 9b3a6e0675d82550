"""One exception tree for jamnet; messages say how to fix the problem."""

from __future__ import annotations


class JamnetError(Exception):
    """Root of every error jamnet raises on purpose."""


class ConfigError(JamnetError, ValueError):
    """Configuration is invalid: unknown key, wrong type or out-of-range value."""


class InputError(JamnetError, ValueError):
    """A request, message or file failed validation (maps to HTTP 400)."""


class AuthError(JamnetError):
    """A signature, challenge, token or invite is missing, wrong, expired or replayed (HTTP 401)."""


class ForbiddenError(AuthError):
    """The caller is authenticated but not allowed to do this (HTTP 403)."""


class NotFoundError(JamnetError, LookupError):
    """The named session, participant or recording does not exist (HTTP 404)."""


class SessionError(JamnetError):
    """A session cannot do what was asked (full, already recording, ...) (HTTP 409)."""


class RateLimitError(JamnetError):
    """Too many of something from one key or one client address (HTTP 429)."""


class MediaError(JamnetError):
    """WebRTC negotiation or media handling failed."""


class StoreError(JamnetError):
    """Persistence failed."""


class SpatialError(JamnetError, ValueError):
    """An HRTF file, position, orientation or room is invalid."""


class ChainError(JamnetError):
    """A contract build, deployment, chain call or transaction failed (HTTP 502)."""
