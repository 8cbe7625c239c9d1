"""``offpkg pull`` (defined beside push in push.py)."""

from .push import pull as cli

__all__ = ["cli"]
