"""Progress events from the core. The core never prints: it calls these hooks,
and the CLI renders them (offpkg.cli.ui). The defaults do nothing."""

from __future__ import annotations


class Events:
    def stage(self, key: str, description: str, total: int | None = None, bytes_: bool = False) -> None:
        """A step starts; ``total`` is its size (items or bytes) when known."""

    def advance(self, key: str, amount: int = 1) -> None:
        """Progress within a step."""

    def done(self, key: str) -> None:
        """A step ended."""

    def warn(self, message: str) -> None:
        """Something the user should know that does not stop the run."""

    def note(self, message: str) -> None:
        """Detail shown with --verbose."""
