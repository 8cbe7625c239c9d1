"""Real servers for the fleet tests, on 127.0.0.1: Debian's docker-registry (the CNCF distribution
registry) and pypiserver. Each runs as its own process with storage in a temporary directory."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen, log: Path, ok: tuple[int, ...] = (200, 401)) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status in ok:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code in ok:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up: {log.read_text()[-2000:]}")


def need(tool: str) -> str:
    exe = shutil.which(tool)
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is missing: .ci/setup-system.sh installs it")
        pytest.skip(f"{tool} is not installed")
    return exe


class Registry:
    """``docker-registry serve CONFIG`` with filesystem storage; ``htpasswd`` for basic auth."""

    def __init__(self, root: Path, htpasswd: Path | None = None, port: int | None = None) -> None:
        self.exe = need("docker-registry")
        self.root = root
        self.port = port or free_port()
        self.storage = root / "storage"
        self.storage.mkdir(parents=True, exist_ok=True)
        auth = ""
        if htpasswd:
            auth = f"auth:\n  htpasswd:\n    realm: offpkg-test\n    path: {htpasswd}\n"
        self.config = root / "config.yml"
        self.config.write_text(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
            f"    rootdirectory: {self.storage}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n{auth}")
        self.log = root / "registry.log"
        self.proc: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Registry:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([self.exe, "serve", str(self.config)], stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL)
        _wait(f"http://{self.host}/v2/", self.proc, self.log)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def blob_file(self, digest: str) -> Path:
        h = digest.split(":", 1)[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / h[:2] / h / "data"


class PyPIServer:
    """``pypi-server run`` on a temporary package directory; open (``-a . -P .``) or with a password file."""

    def __init__(self, root: Path, htpasswd: Path | None = None) -> None:
        self.root = root
        self.packages = root / "packages"
        self.packages.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.htpasswd = htpasswd
        self.log = root / "pypiserver.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> PyPIServer:
        auth = ["-a", "update", "-P", str(self.htpasswd)] if self.htpasswd else ["-a", ".", "-P", "."]
        # --disable-fallback: pypiserver otherwise redirects unknown projects to pypi.org.
        argv = [sys.executable, "-m", "pypiserver", "run", "-i", "127.0.0.1", "-p", str(self.port), *auth,
                "--disable-fallback", str(self.packages)]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        _wait(self.url + "simple/", self.proc, self.log)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
