"""The one helper that runs every subprocess.

argv lists only (never ``shell=True``); output captured, and replayed (redacted) in
the error when the command fails; the environment is passed explicitly so callers
can isolate pip and uv from the user's configuration.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import EnvironmentProblem, SubprocessError
from .redact import redact_text

log = logging.getLogger("offpkg")

# The tail of a failed command's output that is replayed to the user.
_REPLAY_CHARS = 6000


@dataclass(frozen=True)
class Completed:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    check: bool = True,
    what: str | None = None,
    hint: str | None = None,
    timeout: float | None = None,
    input: str | bytes | None = None,
) -> Completed:
    """Run ``argv``; on failure raise :class:`SubprocessError` with the output replayed.

    ``what`` names the step for the user ("resolving with uv"), ``hint`` says what to do.
    ``input`` as bytes is passed exactly (a signed file must reach ssh-keygen unchanged);
    the output is then decoded as UTF-8 with replacement.
    """
    args = [os.fspath(a) for a in argv]
    log.debug("running: %s", redact_text(" ".join(args)))
    try:
        proc = subprocess.run(
            args,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            capture_output=True,
            text=not isinstance(input, bytes),
            timeout=timeout,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        raise EnvironmentProblem(
            f"cannot run {Path(args[0]).name}: {exc.strerror}",
            hint="check that it is installed and on PATH",
        ) from None
    except subprocess.TimeoutExpired:
        raise SubprocessError(f"{what or Path(args[0]).name} did not finish within {timeout:.0f} s") from None
    stdout, stderr = proc.stdout, proc.stderr
    if isinstance(stdout, bytes):
        stdout, stderr = stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace")
    done = Completed(args, proc.returncode, stdout, stderr)
    if check and proc.returncode != 0:
        output = (stdout + ("\n" if stdout and stderr else "") + stderr).strip()
        raise SubprocessError(
            f"{what or Path(args[0]).name} failed (exit code {proc.returncode})",
            hint=hint,
            details=redact_text(condense_tracebacks(output)[-_REPLAY_CHARS:]),
        )
    return done


def parse_json_output(done: Completed, what: str, hint: str, kind: type = dict) -> Any:
    """The JSON document a child printed on stdout (its last line when it printed several).

    A child is another program (a user's interpreter with a noisy sitecustomize, a
    broken environment): output that is not the JSON expected is an :class:`InputError`
    naming the step, with the output replayed, never a crash.
    """
    from .errors import InputError

    text = done.stdout.strip()
    candidates = [text] + ([text.splitlines()[-1]] if "\n" in text else [])
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, kind):
            return value
    raise InputError(f"{what}: the output was not the JSON document expected", hint=hint,
                     details=redact_text(condense_tracebacks((done.stdout + done.stderr).strip())[-_REPLAY_CHARS:]))


def condense_tracebacks(text: str) -> str:
    """Replace a tool's Python traceback with its last line: users need the error, not the stack."""
    out: list[str] = []
    in_tb = False
    for line in text.splitlines():
        if line.lstrip().startswith("Traceback (most recent call last):"):
            in_tb = True
            continue
        if in_tb:
            # Stack frames and source lines are indented; the exception line is not.
            if line.startswith((" ", "\t")) or not line.strip() or line.startswith(("During handling", "The above exception")):
                continue
            in_tb = False
        out.append(line)
    return "\n".join(out)


def isolated_env(extra: Mapping[str, str] | None = None, *, home: str | None = None) -> dict[str, str]:
    """An environment for pip/uv that ignores the user's pip.conf, uv.toml and PIP_*/UV_* variables.

    offpkg passes every index, find-links and option on the command line, so a
    user's ``find-links`` or ``extra-index-url`` can never leak into a bundle.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "CONDA_PKGS", "PYTHONPATH"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    env["UV_NO_CONFIG"] = "1"
    env["PYTHONUTF8"] = "1"
    # Keep TLS settings of the machine (corporate CA bundles), they are not index config.
    for k in ("PIP_CERT",):
        if k in os.environ:
            env["SSL_CERT_FILE"] = env.get("SSL_CERT_FILE", os.environ[k])
    if home:
        env["HOME"] = home
        env["XDG_CONFIG_HOME"] = os.path.join(home, ".config")
        env["XDG_CACHE_HOME"] = os.path.join(home, ".cache")
    if extra:
        env.update(extra)
    return env
