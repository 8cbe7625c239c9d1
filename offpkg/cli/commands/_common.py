"""Helpers shared by the command modules: progress rendering and target/source options."""

from __future__ import annotations

from pathlib import Path

from .. import ui
from ...backends import Sources
from ...config import Config
from ...config import load as load_config
from ...mirrors.catalog import index_urls
from ...errors import UsageError
from ...events import Events
from ...target import Target, resolve_target


class UIEvents(Events):
    """Core progress events rendered with rich (quiet when not on a terminal)."""

    def __init__(self, reporter: ui.Reporter) -> None:
        self.r = reporter

    def stage(self, key: str, description: str, total: int | None = None, bytes_: bool = False) -> None:
        self.r.start(key, description, total, bytes_=bytes_)

    def advance(self, key: str, amount: int = 1) -> None:
        self.r.advance(key, amount)

    def done(self, key: str) -> None:
        self.r.finish(key)

    def warn(self, message: str) -> None:
        ui.warn(ui.safe(message, markup=False))  # warnings can quote the bundle

    def note(self, message: str) -> None:
        ui.detail(ui.safe(message, markup=False))


def targets_from_options(target_files: tuple[str, ...], python_version: str | None,
                         platforms: tuple[str, ...], cfg: Config | None = None) -> list[Target]:
    if not (target_files or python_version or platforms) and cfg is not None and cfg.get("target"):
        target_files = (str(cfg.get("target")),)  # the configured default target
    if target_files:
        if python_version or platforms:
            raise UsageError("use either --target FILE or --python-version/--platform, not both")
        return [Target.from_file(f) for f in target_files]
    return [resolve_target(None, python_version, platforms)]


def settings() -> Config:
    """offpkg's effective configuration (offpkg.toml, [tool.offpkg], user file, OFFPKG_* env)."""
    cfg = load_config()
    for problem in cfg.problems:
        ui.warn(problem)
    return cfg


def sources_from_options(index_url: str | None, extra_index_urls: tuple[str, ...], find_links: tuple[str, ...],
                         no_index: bool = False, cfg: Config | None = None) -> Sources:
    """Indexes in order: --index-url (else the configured mirror, else PyPI), then the extras.

    Without --index-url, the configured mirror comes first and the other mirrors
    (ranked by the last `offpkg mirror test`) are its fallbacks.
    """
    cfg = cfg or settings()
    ranked = index_urls(cfg, index_url) if not no_index else []
    primary = ranked[:1]
    fallbacks = tuple(ranked[1:])
    extras = list(extra_index_urls) or list(cfg.get("extra_index_urls") or [])
    links = []
    for f in find_links:
        p = Path(f)
        if "://" not in f and not p.is_dir():
            raise UsageError(f"--find-links {f} is not a folder")
        links.append(str(p.resolve()) if "://" not in f else f)
    return Sources(tuple(primary + extras), tuple(links), fallbacks)
