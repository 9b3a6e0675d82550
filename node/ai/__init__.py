"""Reserved for the ai subsystem (see ARCHITECTURE.md); nothing here yet."""
