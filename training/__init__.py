"""Model training code (see the [ai] issue)."""
