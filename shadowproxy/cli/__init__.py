"""The ``shadowproxy`` commands."""
