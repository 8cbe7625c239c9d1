"""One exception hierarchy, with messages written for users.

Every error offpkg raises on purpose derives from :class:`OffpkgError`. The CLI's
single error boundary (``offpkg.cli.main``) turns them into a red ``error:`` line,
an optional ``hint:`` line and a stable exit code; anything else is a bug.

Exit codes (documented in README.md, stable):

====  ===============================================================
0     success
1     verification failed (a bundle or environment has problems)
2     usage error (bad option or argument; raised by click too)
3     bad input: missing/unreadable/malformed file, unknown package, no wheel
4     resolution failed (unsatisfiable requirements)
5     network or download failure (after retries and mirror fallback)
6     target mismatch (wrong python, platform, driver or GPU)
7     install failed (the venv/prefix created was removed again)
8     a subprocess (pip, uv, a build) failed
9     output exists (use --force) or a file lock could not be taken
10    environment problem (disk full, permissions, missing tool)
      (an OSError reaching the boundary is mapped by errno: from_oserror)
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


class AuthError(NetworkError):
    """The index refused the credentials (HTTP 401/403): never "no wheel found", never retried elsewhere."""


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


class InterruptedByUser(OffpkgError):
    """Ctrl-C or SIGTERM: what was staged is removed; nothing half-written stays."""

    exit_code = 130


class InternalError(OffpkgError):
    """A bug in offpkg (never bad input): the boundary shows one line, -vv the traceback."""

    exit_code = 70


# errno -> (exception class, what happened, what to do next). Only what the errno really says:
# a missing folder is not a full disk.
def _errno_table() -> dict[int, tuple[type[OffpkgError], str, str]]:
    import errno as e

    space = (EnvironmentProblem, "no space left on device", "free some space, then run the command again")
    table = {
        e.ENOSPC: space,
        e.EACCES: (EnvironmentProblem, "permission denied",
                   "fix the permissions of that path, or choose a path you can write to"),
        e.EPERM: (EnvironmentProblem, "operation not permitted",
                  "fix the permissions of that path, or choose a path you can write to"),
        e.EROFS: (EnvironmentProblem, "read-only file system", "choose a path on a writable file system"),
        e.ENOENT: (InputError, "no such file or directory",
                   "check the path; for an output, create its parent folder first"),
        e.ENOTDIR: (InputError, "a part of the path is not a folder", "check the path"),
        e.EISDIR: (InputError, "is a folder, where a file was expected", "give a file path, not a folder"),
        e.ENAMETOOLONG: (InputError, "file name too long", "choose a shorter path"),
        e.ELOOP: (InputError, "too many levels of symbolic links", "check the path for a symlink loop"),
        e.EEXIST: (OutputExistsError, "already exists",
                   "a file or folder of that name is in the way: choose another path, or move it"),
        e.ENOTEMPTY: (OutputExistsError, "folder is not empty", "choose another path"),
        e.EMFILE: (EnvironmentProblem, "too many open files", "raise the limit (ulimit -n), then run it again"),
        e.ENOMEM: (EnvironmentProblem, "out of memory", "free some memory, then run the command again"),
        e.EIO: (EnvironmentProblem, "input/output error", "check the disk (dmesg), then run the command again"),
        e.EXDEV: (EnvironmentProblem, "cannot move across file systems",
                  "put the output on the same file system as its temporary folder (TMPDIR)"),
    }
    if hasattr(e, "EDQUOT"):
        table[e.EDQUOT] = (EnvironmentProblem, "disk quota exceeded", "free some space or raise your quota")
    return table


def _is_network_error(exc: BaseException) -> bool:
    """requests' and urllib3's errors subclass OSError (IOError): they are network failures, not disk ones."""
    mod = type(exc).__module__ or ""
    return mod.startswith(("requests", "urllib3", "http.client", "ssl")) or isinstance(exc, (ConnectionError,
                                                                                          TimeoutError))


def from_oserror(exc: OSError) -> OffpkgError:
    """One honest OffpkgError for an OSError that reached the boundary (by errno, never a blanket guess)."""
    if _is_network_error(exc):
        text = str(exc) or type(exc).__name__
        return NetworkError(f"network error: {text}",
                            hint="check the connection, the proxy (HTTPS_PROXY) and the index URL, then try again")
    cls, what, hint = _errno_table().get(exc.errno or 0, (EnvironmentProblem, "", "check the path and run it again"))
    what = what or exc.strerror or str(exc) or type(exc).__name__
    where = exc.filename
    if exc.filename2:
        where = f"{exc.filename} -> {exc.filename2}"
    return cls(f"{what}: {where}" if where else what, hint=hint)


class LicensePolicyError(OffpkgError):
    """A package's license is on the deny list; ``problems`` names each package."""

    exit_code = 11

    def __init__(self, message: str, problems: list[str] | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.problems = list(problems or [])
