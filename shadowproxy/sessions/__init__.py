"""Sessions: the live-session manager, the persistence worker that writes records to a store off the hot path,
the SSE event log and resumption."""
