"""Package mirrors: the catalog, probing and ranking them, choosing index URLs, and the
pip.conf/.condarc readers and editors.

Modules: :mod:`.catalog` (the catalog, user mirrors, :func:`index_urls`), :mod:`.probe`
(``mirror test``: probing, ranking), :mod:`.use` (``mirror use``: the file edits and pip's
precedence), :mod:`.confedit` (atomic writes, backups, diffs; re-exports the editors),
:mod:`.pipconf` (the pip.conf editor), :mod:`.condarcdoc` (the .condarc editor, ruamel.yaml),
:mod:`.conflookup` (which pip/conda config files apply). The names below are the package's API;
``offpkg.mirrors.catalog`` is the module (the catalog itself is ``catalog.catalog()``), which
also answers the names of :mod:`.probe` and :mod:`.use` for callers of the pre-split module.
"""

from __future__ import annotations

# No name here shadows a submodule: ``offpkg.mirrors.catalog`` and ``offpkg.mirrors.probe`` are the
# modules (the functions are ``catalog.catalog()`` and ``probe.probe()``).
from . import catalog, probe
from .catalog import (KINDS, OFFICIAL, OFFICIAL_PYPI, OFFICIAL_TORCH, Mirror, find, index_urls, known_mirrors,
                      parse_mirror_option, torch_index_base, user_mirror)
from .probe import (DEFAULT_PROBE_PROJECT, DEFAULT_TIMEOUT, DOWNLOAD_CAP, RANKING_FILE, RANKING_MAX_AGE_S,
                    ProbeResult, assign_freshness, load_ranking, rank, save_ranking, test_mirrors)
from .use import (PIP_TIMEOUT, UsePlan, condarc_change, pip_conf_change, pip_precedence_warning, plan_use,
                  target_files)

__all__ = ["KINDS", "OFFICIAL", "OFFICIAL_PYPI", "OFFICIAL_TORCH", "Mirror", "catalog", "find", "index_urls",
           "known_mirrors", "parse_mirror_option", "torch_index_base", "user_mirror", "DEFAULT_PROBE_PROJECT",
           "DEFAULT_TIMEOUT", "DOWNLOAD_CAP", "RANKING_FILE", "RANKING_MAX_AGE_S", "ProbeResult",
           "assign_freshness", "load_ranking", "rank", "save_ranking", "test_mirrors", "PIP_TIMEOUT",
           "UsePlan", "condarc_change", "pip_conf_change", "pip_precedence_warning", "plan_use", "target_files"]
