"""``offpkg report BUNDLE -o report.html``: one self-contained HTML page for the approver."""

from __future__ import annotations

from pathlib import Path

import click

from .. import ui
from ..options import force_option, json_option


@click.command("report")
@click.argument("bundle", type=click.Path(exists=False))
@click.option("-o", "--output", required=True, type=click.Path(), help="The HTML file to write.")
@click.option("--base", default=None, type=click.Path(exists=False), metavar="OLD",
              help="An older bundle (directory or archive): the report shows what changed since.")
@click.option("--trust", "trust", default=None, type=click.Path(exists=False), metavar="ALLOWED_SIGNERS",
              help="Check the bundle's signatures against this OpenSSH allowed_signers file "
                   "(default: OFFPKG_TRUST / the trust config key).")
@force_option
@json_option
def report(bundle: str, output: str, base: str | None, trust: str | None, force: bool, as_json: bool) -> None:
    """Write an HTML review of a bundle: targets, GPU build, signatures, verification,
    packages with licenses and sizes, a size chart, dependencies, and the diff with --base.

    The page is self-contained: no network, no JavaScript; it opens from a USB stick.
    The bundle's integrity is checked now; the smoke-test record is the builder's claim
    unless the bundle is signed by a trusted key.
    """
    ui.state.json = as_json
    from ...fsutil import check_output, write_text_atomic
    from ...review.report import build_report

    out = Path(output)
    if out.is_dir():
        from ...errors import UsageError

        raise UsageError(f"-o {out} is a directory; give the path of the HTML file to write")
    check_output(out, force)
    anchor = None
    try:
        from ...trust import resolve_anchor
        from ._common import settings

        anchor = resolve_anchor(trust, settings())
    except ImportError:
        if trust:
            from ...errors import UsageError

            raise UsageError("--trust: this offpkg cannot check signatures") from None
    with ui.spinner("verifying the bundle and reading its packages"):
        html, summary = build_report(Path(bundle), Path(base) if base else None, anchor)
    write_text_atomic(out, html)
    if as_json:
        ui.emit_json("report", {"ok": True, "bundle": bundle, "output": str(out), "base": base, **summary})
        return
    ui.result(f"wrote {out} ({ui.human_size(len(html.encode()))}): {summary['packages']} packages, "
              f"integrity {'verified' if summary['verified'] else 'FAILED'}, {summary['signatures']}, "
              f"{summary['unknown_licenses']} unknown license(s)")
    if not summary["verified"]:
        ui.warn("the bundle failed verification; the report lists the problems")
