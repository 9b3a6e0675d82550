"""SQLite persistence: sessions, contributions and recordings."""
