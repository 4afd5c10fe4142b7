"""Tapes: sessions recorded as JSON Lines, and what is done with them (show, replay, serve, diff, dry-run policy)."""
