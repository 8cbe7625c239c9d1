"""``offpkg serve``: one bundle as a PEP 503 / PEP 691 index for a whole cluster."""

from __future__ import annotations

import errno
import ipaddress
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import click

from .. import ui
from ...errors import EnvironmentProblem, UsageError, VerificationError
from ..options import json_option, trust_option


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _stop(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM: stop like Ctrl-C, so the extracted copy is removed


@click.command()
@click.argument("bundle", type=click.Path(exists=False))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 or :: for every interface).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on; 0 picks a free one (printed).")
@trust_option
@json_option
def serve(bundle: str, host: str, port: int, trust: str | None, as_json: bool) -> None:
    """Serve a bundle as a simple index: `pip install --index-url http://HOST:PORT/simple NAME`.

    The bundle (directory, .tar, .tar.zst or .sh) is verified first; then its wheels
    are served read-only with their sha256 hashes, as PEP 503 HTML and PEP 691 JSON.
    Its requirements.txt is served too, for `--require-hashes -r URL`. Stop with Ctrl-C.
    """
    ui.state.json = as_json
    from ...install import opened_bundle
    from ...fleet.simpleindex import IndexServer
    from ...trust import resolve_anchor
    from ...verify import verify_bundle
    from ._common import settings

    src = Path(bundle)
    anchor = resolve_anchor(trust, settings())  # a cluster installs what is served: same rule as install
    with opened_bundle(src) as bdir:
        with ui.spinner(f"verifying {bundle}"):
            report = verify_bundle(bdir, trust=anchor)
        if not report.ok:
            raise VerificationError(f"{bundle} failed verification; not serving it", report.problems,
                                    hint="copy the bundle again from its source, or rebuild it")
        assert report.manifest is not None
        try:
            server = IndexServer(bdir, report.manifest, host, port, log=ui.info)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise EnvironmentProblem(f"port {port} on {host} is already in use",
                                         hint="choose another with --port, or --port 0 for any free port") from None
            if isinstance(exc, PermissionError) or exc.errno == errno.EACCES:
                raise EnvironmentProblem(f"not allowed to listen on {host}:{port}",
                                         hint="ports below 1024 need root; use e.g. --port 8080") from None
            # EADDRNOTAVAIL, an unknown host name (socket.gaierror), an IPv6 address without IPv6 ...
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                             hint="give an address of this host with --host") from None
        # Listening on every interface: show a name the nodes can use, not 0.0.0.0.
        shown = socket.gethostname() if host in ("0.0.0.0", "::", "") else host
        url = server.url(shown)
        projects = len(server.projects)
        if as_json:
            ui.emit_json("serve", {"ok": True, "bundle": str(src), "url": url, "host": host, "port": server.port,
                                   "projects": projects, "files": len(report.manifest.packages)})
        else:
            ui.result(f"serving {bundle} ({projects} projects, {len(report.manifest.packages)} wheels) at {url}")
            ui.result(f"  pip install --index-url {url} NAME   "
                      f"(or --require-hashes -r {url[:-len('simple/')]}requirements.txt)")
            sys.stdout.flush()
        if not _is_loopback(host):
            ui.warn("serving to the network over plain HTTP without authentication (read-only); pip and uv "
                    f"on other hosts need `--trusted-host {shown}`"
                    " (or put a TLS proxy in front)")
        previous = signal.signal(signal.SIGTERM, _stop)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            ui.info("stopped")
        finally:
            signal.signal(signal.SIGTERM, previous)
            server.server_close()


cli = serve
