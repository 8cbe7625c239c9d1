"""conda environments: inspection, conda-pack, unpack/relocate, bundle and install.

Modules, by concept:

- :mod:`.env`        an environment on disk: platform, python, conda and pip packages, editables
- :mod:`.checks`     the rules an environment must meet to install offline (checked at build *and* install)
- :mod:`.pack`       the conda-pack wrapper (:func:`pack_env`)
- :mod:`.unpack`     unpack and relocate an archive offline (:func:`install_packed`)
- :mod:`.prefixscan` the streamed scan for old prefixes left after conda-unpack
- :mod:`.condarc`    the offline ``.condarc`` written into an unpacked environment
- :mod:`.bundle`     a conda environment inside an offpkg bundle; :mod:`.install` installing it

The names below are the package's API (``from offpkg import conda; conda.pack_env(...)``).
"""

from __future__ import annotations

from .condarc import OFFLINE_CONDARC, write_offline_condarc
from .env import (CondaError, NotACondaEnvError, conda_python_dists, conda_records, env_platform, env_python,
                  host_subdir, pip_packages, resolve_env_name)
from .pack import FORMATS, EditablePackagesError, ModifiedEnvironmentError, PackResult, pack_env
from .unpack import InstallReport, PrefixNotRewrittenError, install_packed

__all__ = [
    "FORMATS", "CondaError", "NotACondaEnvError", "EditablePackagesError", "ModifiedEnvironmentError",
    "PrefixNotRewrittenError", "PackResult", "InstallReport", "host_subdir", "env_platform", "env_python",
    "conda_records", "pip_packages", "conda_python_dists", "resolve_env_name", "pack_env", "install_packed",
    "write_offline_condarc", "OFFLINE_CONDARC",
]
