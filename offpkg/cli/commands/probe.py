from __future__ import annotations

import json
import sys
from importlib import resources

import click

from ... import _probe
from .. import ui
from ...fsutil import write_text_atomic
from ..options import json_option


@click.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the JSON here instead of stdout.")
@click.option("--script", is_flag=True, help="Print the stdlib-only probe script instead (run it with python3 on the target).")
@json_option
def probe(output: str | None, script: bool, as_json: bool) -> None:
    """Describe this host as a target: python, wheel tags, markers, libc, GPU.

    On an air-gapped host without offpkg: `offpkg probe --script > probe.py`
    here, then `python3 probe.py > target.json` there gives the same JSON.
    """
    if script:
        sys.stdout.write((resources.files("offpkg") / "_probe.py").read_text(encoding="utf-8"))
        return
    data = _probe.probe()
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if as_json:
        # The envelope every command's --json has; the target file itself stays plain (probe.py's output).
        ui.state.json = True
        if output:
            from pathlib import Path

            write_text_atomic(Path(output), text)
        ui.emit_json("probe", {"ok": True, "target": data, "output": output})
        return
    if output:
        from pathlib import Path

        write_text_atomic(Path(output), text)
        ui.info(f"wrote {output}")
    else:
        sys.stdout.write(text)
