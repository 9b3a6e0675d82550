"""Reserved for the spatial subsystem (see ARCHITECTURE.md); nothing here yet."""
