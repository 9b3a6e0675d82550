"""Structured logging: key=value lines for people, JSON lines for log shippers."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import OrderedDict

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class _Formatter(logging.Formatter):
    def __init__(self, as_json: bool) -> None:
        super().__init__()
        self._json = as_json

    def format(self, record: logging.LogRecord) -> str:
        fields = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        if self._json:
            return json.dumps(fields, default=str)
        return " ".join(f"{k}={v!r}" if " " in str(v) else f"{k}={v}" for k, v in fields.items())


class RepeatFilter(logging.Filter):
    """At most ``burst`` records of one kind (logger, level and message template) per
    ``window_s``; the rest are counted and reported by the first record of that kind after
    the window (``repeats_suppressed=N``). Keeps the log readable when a client (or an
    attacker) makes the same thing happen thousands of times."""

    def __init__(self, burst: int = 20, window_s: float = 60.0, kinds: int = 1024) -> None:
        super().__init__()
        self.burst = burst
        self.window_s = window_s
        self.kinds = kinds
        self._seen: OrderedDict[tuple[str, int, str], list[float]] = OrderedDict()
        """Kind → [window start, records in it, suppressed in it]."""

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))
        now = record.created
        state = self._seen.pop(key, None)
        if state is None or now - state[0] >= self.window_s:
            if state is not None and state[2]:
                record.repeats_suppressed = int(state[2])
            state = [now, 0.0, 0.0]
        self._seen[key] = state
        while len(self._seen) > self.kinds:
            self._seen.popitem(last=False)
        if state[1] >= self.burst:
            state[2] += 1
            return False
        state[1] += 1
        return True


def setup_logging(level: str = "info", as_json: bool = False) -> None:
    """Configure the root logger once for the process."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(as_json))
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiortc/aioice are chatty at info; their warnings still show.
    for name in ("aioice", "aiortc"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
