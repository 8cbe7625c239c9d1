"""One exception hierarchy, with messages written for users.

Every error offpkg raises on purpose derives from :class:`OffpkgError`. The CLI's
single error boundary (``offpkg.cli.main``) turns them into a red ``error:`` line,
an optional ``hint:`` line and a stable exit code; anything else is a bug.

Exit codes (documented in README.md, stable):

====  ===============================================================
0     success
1     verification failed (a bundle or environment has problems)
2     usage error (bad option or argument; raised by click too)
3     bad input: unreadable/malformed file, unknown package, no wheel
4     resolution failed (unsatisfiable requirements)
5     network or download failure (after retries and mirror fallback)
6     target mismatch (wrong python, platform, driver or GPU)
7     install failed (the venv/prefix created was removed again)
8     a subprocess (pip, uv, a build) failed
9     output exists (use --force) or a file lock could not be taken
10    environment problem (disk full, permissions, missing tool)
11    license policy: a package's license is denied (--deny-license, config deny-licenses)
70    internal error (a bug; -vv shows the traceback)
130   interrupted
====  ===============================================================
"""

from __future__ import annotations


class OffpkgError(Exception):
    """Base class: ``message`` says what went wrong, ``hint`` what to do next."""

    exit_code = 3

    def __init__(self, message: str, *, hint: str | None = None, details: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        # Captured output of a failed tool, replayed under the error.
        self.details = details

    def __str__(self) -> str:
        return self.message


class VerificationError(OffpkgError):
    exit_code = 1

    def __init__(self, message: str, problems: list[str] | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.problems = list(problems or [])


class UsageError(OffpkgError):
    exit_code = 2


class InputError(OffpkgError):
    """Bad input: a malformed file, an unknown package, a wheel that does not exist."""

    exit_code = 3


class ManifestError(InputError):
    """An offpkg.json that is unreadable, malformed or hostile."""


class UnsafeArchiveError(InputError):
    """An archive member that would escape or misuse the destination."""


class NoWheelError(InputError):
    """A requirement with no usable wheel for the target and no safe build."""


class ResolutionError(OffpkgError):
    exit_code = 4


class NetworkError(OffpkgError):
    exit_code = 5


class HashMismatchError(NetworkError):
    """Downloaded bytes do not match the expected sha256. Never retried elsewhere."""


class TargetMismatchError(OffpkgError):
    exit_code = 6


class InstallError(OffpkgError):
    exit_code = 7


class SubprocessError(OffpkgError):
    exit_code = 8


class OutputExistsError(OffpkgError):
    exit_code = 9


class LockError(OffpkgError):
    exit_code = 9


class EnvironmentProblem(OffpkgError):
    exit_code = 10


class LicensePolicyError(OffpkgError):
    """A package's license is on the deny list; ``problems`` names each package."""

    exit_code = 11

    def __init__(self, message: str, problems: list[str] | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.problems = list(problems or [])
