"""Reserved for the chain subsystem (see ARCHITECTURE.md); nothing here yet."""
