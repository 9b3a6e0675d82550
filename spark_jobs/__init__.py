"""PySpark jobs (see the [ai] issue)."""
