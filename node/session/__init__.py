"""Sessions, participants, jitter buffer and the real-time mix (pure logic, no I/O)."""
