"""Reserved for the p2p subsystem (see ARCHITECTURE.md); nothing here yet."""
