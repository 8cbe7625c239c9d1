"""The lock files a bundle carries, written from its packages: requirements.txt, pylock.toml, pip.conf.

What these files may say is fixed: verify (offpkg.trust.locks) accepts exactly this shape.
"""

from __future__ import annotations

import tomli_w
from packaging.markers import Marker
from packaging.pylock import Package as LockPackage
from packaging.pylock import PackageWheel, Pylock
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from .manifest import Package
from .target import Target


def _requirements_txt(target: Target, pkgs: list[Package], header: list[str]) -> str:
    lines = [f"# {h}" if h else "#" for h in header]
    lines += [f"# target: {target.describe()}",
              "# install: pip install --no-index --find-links wheels --require-hashes --only-binary :all: -r requirements.txt",
              ""]
    for p in sorted(pkgs, key=lambda p: p.name):
        lines.append(f"{p.name}=={p.version} \\\n    --hash=sha256:{p.sha256}")
    return "\n".join(lines) + "\n"


def _target_marker(t: Target) -> str:
    m = t.markers
    parts = [f"python_version == '{t.python_version}'", f"sys_platform == '{m.get('sys_platform', '')}'",
             f"platform_machine == '{m.get('platform_machine', '')}'",
             f"implementation_name == '{t.implementation}'"]
    return " and ".join(parts)


def _pylock(targets: list[Target], pkgs: list[Package]) -> str:
    groups: dict[tuple[str, str], list[Package]] = {}
    for p in pkgs:
        groups.setdefault((p.name, p.version), []).append(p)
    entries = []
    for (name, version), files in sorted(groups.items()):
        tset = sorted({t for p in files for t in p.targets})
        marker = None
        if len(targets) > 1 and len(tset) < len(targets):
            marker = Marker(" or ".join(f"({_target_marker(targets[i])})" for i in tset))
        entries.append(LockPackage(
            name=canonicalize_name(name), version=Version(version), marker=marker,
            wheels=[PackageWheel(name=p.filename, path=p.path, size=p.size, hashes={"sha256": p.sha256})
                    for p in sorted(files, key=lambda p: p.filename)],
            tool={"offpkg": {"built-from-sdist": True}} if any(p.built_from_sdist for p in files) else None,
        ))
    versions = sorted({t.python_version for t in targets}, key=lambda v: tuple(map(int, v.split("."))))
    lockobj = Pylock(
        lock_version=Version("1.0"), created_by="offpkg",
        requires_python=SpecifierSet(f"=={versions[0]}.*") if len(versions) == 1 else SpecifierSet(f">={versions[0]}"),
        environments=[Marker(_target_marker(t)) for t in targets],
        packages=entries,
    )
    data = lockobj.to_dict()
    Pylock.from_dict(data)  # validate what we are about to write
    return tomli_w.dumps(data)


PIP_CONF = """\
# pip configuration for the offline host: never reach an index, only this bundle's wheels.
# `offpkg install` and install.sh copy it into the venv with the absolute path of wheels/.
[global]
no-index = true
find-links = wheels
only-binary = :all:
disable-pip-version-check = true
"""
