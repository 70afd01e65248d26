"""LIBERO support: setup and config (always run) and the real simulator (skipped without the extra)."""
