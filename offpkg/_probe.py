#!/usr/bin/env python3
"""Describe this host as an offpkg target: python, wheel tags, markers, libc, GPU.

This file is stdlib-only on purpose. ``offpkg probe`` imports it, and
``offpkg probe --script`` prints it verbatim, so ``python3 probe.py > target.json``
on an air-gapped host without offpkg gives exactly the JSON that ``offpkg probe``
would give there. Runs on Python 3.6+ (TARGET_PYTHON_FLOOR); an older python gets one
clear error, so the file must stay parseable by Python 2.7 (no f-strings, no annotations).
"""

import json
import os
import platform
import re
import struct
import subprocess
import sys
import sysconfig

PROBE_FORMAT = 1

# The oldest target python offpkg bundles for: probe.py and the bundle's bootstrap.py run on it
# (tested on 3.6, 3.7, 3.8 by tests/test_pythons.py) and uv resolves for nothing older.
# install.sh, install.ps1 and selfextract.sh carry the same number (a test keeps them equal).
TARGET_PYTHON_FLOOR = (3, 6)

# CUDA toolkit -> minimum Linux / Windows driver (NVIDIA CUDA release notes, Table 3).
# Kept equal to offpkg/data/cuda.json by a test; used to name the newest CUDA a driver runs.
CUDA_MIN_DRIVER = [
    ("11.0", "450.51.05", "451.48"),
    ("11.1", "455.23", "456.38"),
    ("11.2", "460.27.03", "460.82"),
    ("11.3", "465.19.01", "465.89"),
    ("11.4", "470.42.01", "471.11"),
    ("11.5", "495.29.05", "496.04"),
    ("11.6", "510.39.01", "511.23"),
    ("11.7", "515.43.04", "516.01"),
    ("11.8", "520.61.05", "520.06"),
    ("12.0", "525.60.13", "527.41"),
    ("12.1", "530.30.02", "531.14"),
    ("12.2", "535.54.03", "536.25"),
    ("12.3", "545.23.06", "545.84"),
    ("12.4", "550.54.14", "551.61"),
    ("12.5", "555.42.02", "555.85"),
    ("12.6", "560.28.03", "560.76"),
    ("12.8", "570.26", "570.65"),
    ("12.9", "575.51.03", "576.02"),
    ("13.0", "580.65.06", "580.88"),
    ("13.1", "590.44.01", "591.34"),
    ("13.2", "595.45.04", "595.79"),
]


def _vkey(v):
    return tuple(int(x) for x in re.findall(r"\d+", v))


def cuda_for_driver(driver, os_name="linux"):
    """The newest CUDA toolkit whose own minimum driver is <= ``driver`` (or None)."""
    if not driver:
        return None
    col = 2 if os_name == "windows" else 1
    best = None
    for row in CUDA_MIN_DRIVER:
        if _vkey(row[col]) <= _vkey(driver):
            best = row[0]
    return best


# ---------------------------------------------------------------- platform tags

_LEGACY_MANYLINUX = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}


def manylinux_platforms(arch, glibc_major, glibc_minor):
    """Every platform tag a glibc ``major.minor`` host of ``arch`` accepts, best first.

    manylinux_2_N down to the oldest glibc for the arch, with the legacy aliases
    (manylinux2014/2010/1) right after their PEP 600 names, then linux_<arch>.
    This is what pip's ``--platform`` does not do (pip#10760).
    """
    out = []
    if arch in ("x86_64", "i686"):
        oldest = 5
    else:
        oldest = 17
    if glibc_major == 2:
        for minor in range(glibc_minor, oldest - 1, -1):
            out.append("manylinux_2_%d_%s" % (minor, arch))
            legacy = _LEGACY_MANYLINUX.get((2, minor))
            if legacy and (minor == 17 or arch in ("x86_64", "i686")):
                out.append("%s_%s" % (legacy, arch))
    out.append("linux_%s" % arch)
    return out


def musllinux_platforms(arch, musl_major, musl_minor):
    out = ["musllinux_%d_%d_%s" % (musl_major, m, arch) for m in range(musl_minor, -1, -1)]
    out.append("linux_%s" % arch)
    return out


def expand_platform(tag):
    """Expand one platform tag the way a host of that kind accepts wheels."""
    m = re.match(r"^manylinux_(\d+)_(\d+)_(.+)$", tag)
    if m:
        return manylinux_platforms(m.group(3), int(m.group(1)), int(m.group(2)))
    m = re.match(r"^manylinux(2014|2010|1)_(.+)$", tag)
    if m:
        minor = {"2014": 17, "2010": 12, "1": 5}[m.group(1)]
        return manylinux_platforms(m.group(2), 2, minor)
    m = re.match(r"^musllinux_(\d+)_(\d+)_(.+)$", tag)
    if m:
        return musllinux_platforms(m.group(3), int(m.group(1)), int(m.group(2)))
    m = re.match(r"^macosx_(\d+)_(\d+)_(.+)$", tag)
    if m:
        return mac_platforms(int(m.group(1)), int(m.group(2)), m.group(3))
    return [tag]


def mac_platforms(major, minor, arch):
    arches = {"x86_64": ["x86_64", "intel", "fat64", "fat32", "universal2", "universal"],
              "arm64": ["arm64", "universal2"]}.get(arch, [arch])
    out = []
    if major >= 11:
        for ma in range(major, 10, -1):
            for a in arches:
                out.append("macosx_%d_0_%s" % (ma, a))
        if arch == "x86_64":
            for mi in range(16, 3, -1):
                for a in arches:
                    out.append("macosx_10_%d_%s" % (mi, a))
        elif arch == "arm64":
            for mi in range(16, 3, -1):
                out.append("macosx_10_%d_universal2" % mi)
    else:
        for mi in range(minor, 3, -1):
            for a in arches:
                out.append("macosx_10_%d_%s" % (mi, a))
    return out


def _glibc_version():
    try:
        ver = os.confstr("CS_GNU_LIBC_VERSION")  # "glibc 2.36"
        if ver and ver.startswith("glibc "):
            major, minor = ver.split()[1].split(".")[:2]
            return int(major), int(re.match(r"\d+", minor).group(0))
    except (AttributeError, OSError, ValueError):
        pass
    name, ver = platform.libc_ver()
    if name == "glibc" and ver:
        parts = ver.split(".")
        return int(parts[0]), int(parts[1])
    return None


def _musl_version():
    try:
        out = subprocess.run(["ldd", "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             universal_newlines=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"musl.*?Version (\d+)\.(\d+)", out, re.S)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _arch():
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64" if sys.platform.startswith("linux") else "arm64",
               "i386": "i686"}.get(machine, machine)
    # A 32-bit python on a 64-bit kernel installs 32-bit wheels.
    if machine == "x86_64" and struct.calcsize("P") == 4:
        machine = "i686"
    if machine == "aarch64" and struct.calcsize("P") == 4:
        machine = "armv7l"
    return machine


def host_platforms():
    """Platform tags this host accepts, best first; plus a libc description."""
    arch = _arch()
    if sys.platform.startswith("linux"):
        glibc = _glibc_version()
        if glibc:
            return manylinux_platforms(arch, *glibc), {"name": "glibc", "version": "%d.%d" % glibc}
        musl = _musl_version()
        if musl:
            return musllinux_platforms(arch, *musl), {"name": "musl", "version": "%d.%d" % musl}
        return ["linux_%s" % arch], None
    if sys.platform == "darwin":
        ver = platform.mac_ver()[0] or "11.0"
        major, minor = (int(x) for x in ver.split(".")[:2])
        return mac_platforms(major, minor, platform.machine()), None
    if sys.platform == "win32":
        return [{"x86_64": "win_amd64", "i686": "win32", "aarch64": "win_arm64",
                 "arm64": "win_arm64"}.get(arch, "win_" + arch)], None
    return [re.sub(r"[-.]", "_", sysconfig.get_platform())], None


# ------------------------------------------------------------------ wheel tags

def interpreter_abi():
    impl = sys.implementation.name
    if impl == "cpython":
        soabi = sysconfig.get_config_var("SOABI") or ""
        debug = "d" if sysconfig.get_config_var("Py_DEBUG") else ""
        threaded = "t" if sysconfig.get_config_var("Py_GIL_DISABLED") else ""
        return "cp%d%d%s%s" % (sys.version_info[0], sys.version_info[1], threaded, debug)
    soabi = sysconfig.get_config_var("SOABI") or ""
    return re.sub(r"[-.]", "_", soabi) if soabi else "none"


def tags_for(impl, py_major, py_minor, abi, platforms):
    """The ordered wheel tags of an interpreter (the order of packaging.tags.sys_tags)."""
    interp = {"cpython": "cp", "pypy": "pp"}.get(impl, impl[:2])
    nodot = "%d%d" % (py_major, py_minor)
    tags = []
    if impl == "cpython":
        abis = [abi] if abi and abi != "none" else []
        for a in abis:
            tags += ["cp%s-%s-%s" % (nodot, a, p) for p in platforms]
        abi_free_threaded = abi.endswith("t") if abi else False
        if not abi_free_threaded:
            tags += ["cp%s-abi3-%s" % (nodot, p) for p in platforms]
        tags += ["cp%s-none-%s" % (nodot, p) for p in platforms]
        if not abi_free_threaded:
            for minor in range(py_minor - 1, 1, -1):
                tags += ["cp%d%d-abi3-%s" % (py_major, minor, p) for p in platforms]
    else:
        abis = [abi] if abi and abi != "none" else []
        for a in abis:
            tags += ["%s%s-%s-%s" % (interp, nodot, a, p) for p in platforms]
        tags += ["%s%s-none-%s" % (interp, nodot, p) for p in platforms]
    # compatible_tags: py3X-none-<plat> ... py30, py3; then <interp>-none-any; py3X-none-any ...
    versions = ["%d%d" % (py_major, m) for m in range(py_minor, -1, -1)]
    pys = ["py" + v for v in versions[:1]] + ["py%d" % py_major] + ["py" + v for v in versions[1:]]
    for v in pys:
        tags += ["%s-none-%s" % (v, p) for p in platforms]
    tags.append("%s%s-none-any" % (interp, nodot))
    for v in pys:
        tags.append("%s-none-any" % v)
    return tags


def _py_version_info():
    return sys.version_info[0], sys.version_info[1]


def markers():
    """PEP 508 marker environment of this interpreter."""
    impl = sys.implementation
    iver = "%d.%d.%d" % impl.version[:3]
    if impl.version.releaselevel != "final":
        iver += impl.version.releaselevel[0] + str(impl.version.serial)
    return {
        "implementation_name": impl.name,
        "implementation_version": iver,
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_python_implementation": platform.python_implementation(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    }


# ------------------------------------------------------------------ GPU facts

def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _nvidia_smi():
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,compute_cap", "--format=csv,noheader"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True, timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    devices = []
    driver = None
    for line in out.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3:
            devices.append({"name": parts[0], "compute_cap": parts[2]})
            driver = driver or parts[1]
    return driver, devices


def gpu_facts(os_name="linux"):
    """NVIDIA driver, the newest CUDA it runs, and each GPU's name and compute capability (AMD: see amd_facts).

    Sources in order: OFFPKG_CUDA_DRIVER_VERSION / OFFPKG_CUDA_COMPUTE_CAP, then
    /sys/module/nvidia/version, /proc/driver/nvidia/version, then nvidia-smi.
    None when there is no NVIDIA GPU.
    """
    driver = None
    source = None
    devices = None
    env_driver = os.environ.get("OFFPKG_CUDA_DRIVER_VERSION", "").strip()
    env_caps = os.environ.get("OFFPKG_CUDA_COMPUTE_CAP", "").strip()
    if env_driver:
        driver, source = env_driver, "env"
    if env_caps:
        devices = [{"name": "GPU %d (OFFPKG_CUDA_COMPUTE_CAP)" % i, "compute_cap": c.strip()}
                   for i, c in enumerate(env_caps.split(",")) if c.strip()]
    if driver is None:
        text = _read("/sys/module/nvidia/version")
        if text and text.strip():
            driver, source = text.strip(), "/sys/module/nvidia/version"
    if driver is None:
        text = _read("/proc/driver/nvidia/version")
        m = re.search(r"Kernel Module(?: for [\w-]+)?\s+(\d+\.\d+(?:\.\d+)?)", text or "")
        if m:
            driver, source = m.group(1), "/proc/driver/nvidia/version"
    if devices is None or driver is None:
        smi = _nvidia_smi()
        if smi:
            if driver is None and smi[0]:
                driver, source = smi[0], "nvidia-smi"
            if devices is None:
                devices = smi[1]
    jetson = _is_jetson()
    if driver is None and not devices and not jetson:
        return amd_facts()
    facts = {
        "vendor": "nvidia",
        "driver_version": driver,
        "cuda_max": cuda_for_driver(driver, os_name),
        "devices": devices or [],
        "source": source or "env",
    }
    if jetson:
        facts["jetson"] = jetson
    return facts


def _is_jetson():
    """The Jetson model ("NVIDIA Jetson AGX Orin ...") when this is a Jetson (L4T) board, else None."""
    if not os.path.exists("/etc/nv_tegra_release"):
        return None
    model = (_read("/proc/device-tree/model") or "").strip("\x00 \n")
    return model or "NVIDIA Jetson (L4T)"


def gfx_name(target_version):
    """KFD's gfx_target_version (major*10000 + minor*100 + stepping) as a gfx target: 90010 -> gfx90a."""
    v = int(target_version)
    major, minor, step = v // 10000, (v // 100) % 100, v % 100
    if major <= 0:
        return None
    return "gfx%d%x%x" % (major, minor, step)


def _kfd_gfx():
    """gfx targets of the GPU nodes in /sys/class/kfd/kfd/topology/nodes/*/properties (amdgpu loaded)."""
    root = "/sys/class/kfd/kfd/topology/nodes"
    out = []
    try:
        nodes = sorted(os.listdir(root), key=lambda n: int(n) if n.isdigit() else 0)
    except OSError:
        return out
    for node in nodes:
        text = _read(os.path.join(root, node, "properties")) or ""
        m = re.search(r"^gfx_target_version\s+(\d+)", text, re.M)
        if m and int(m.group(1)) > 0:  # CPU nodes have 0
            name = gfx_name(m.group(1))
            if name:
                out.append(name)
    return out


def _run(argv):
    try:
        out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True,
                             timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def _rocm_version():
    """The installed ROCm version: /opt/rocm/.info/version, else `amd-smi version`, else None."""
    text = _read(os.path.join(os.environ.get("ROCM_PATH") or "/opt/rocm", ".info", "version"))
    m = re.match(r"\s*(\d+\.\d+(?:\.\d+)?)", text or "")
    if m:
        return m.group(1)
    m = re.search(r"ROCm version:\s*(\d+\.\d+(?:\.\d+)?)", _run(["amd-smi", "version"]) or "")
    return m.group(1) if m else None


def amd_facts():
    """AMD GPUs: each one's gfx target and the ROCm version; None when there is none.

    Sources in order: OFFPKG_ROCM_GFX (comma-separated) / OFFPKG_ROCM_VERSION, then the
    KFD topology in sysfs (amdgpu driver loaded), then `rocminfo`; the ROCm version from
    /opt/rocm/.info/version or `amd-smi version`.
    """
    env_gfx = os.environ.get("OFFPKG_ROCM_GFX", "").strip()
    env_ver = os.environ.get("OFFPKG_ROCM_VERSION", "").strip()
    source = None
    gfx = [g.strip().lower() for g in env_gfx.split(",") if g.strip()] if env_gfx else []
    if gfx:
        source = "env"
    if not gfx:
        gfx = _kfd_gfx()
        source = "/sys/class/kfd/kfd/topology" if gfx else None
    if not gfx:
        text = _run(["rocminfo"]) or ""
        gfx = [g for g in re.findall(r"^\s*Name:\s*(gfx[0-9a-f]{3,4})\b", text, re.M)]
        source = "rocminfo" if gfx else None
    if not gfx and not env_ver:
        return None
    return {
        "vendor": "amd",
        "rocm_version": env_ver or _rocm_version(),
        "devices": [{"name": "AMD GPU %d" % i, "gfx": g} for i, g in enumerate(gfx)],
        "source": source or "env",
    }


# ------------------------------------------------------------------ the target

def probe():
    platforms, libc = host_platforms()
    py_major, py_minor = _py_version_info()
    abi = interpreter_abi()
    os_name = {"linux": "linux", "darwin": "macos", "win32": "windows"}.get(
        "linux" if sys.platform.startswith("linux") else sys.platform, sys.platform)
    return {
        "probe_format": PROBE_FORMAT,
        "python": {
            "implementation": sys.implementation.name,
            "version": "%d.%d" % (py_major, py_minor),
            "full_version": platform.python_version(),
            "abi": abi,
        },
        "os": os_name,
        "arch": _arch(),
        "libc": libc,
        "platforms": platforms,
        "tags": tags_for(sys.implementation.name, py_major, py_minor, abi, platforms),
        "markers": markers(),
        "gpu": gpu_facts(os_name),
    }


def main():
    if sys.version_info[:2] < TARGET_PYTHON_FLOOR:
        sys.stderr.write("error: this is Python %d.%d; offpkg bundles for Python %d.%d or newer only. "
                         "Run probe.py with the host's python3 (e.g. python3.6 probe.py > target.json).\n"
                         % ((sys.version_info[0], sys.version_info[1]) + TARGET_PYTHON_FLOOR))
        sys.exit(6)
    sys.stdout.write(json.dumps(probe(), indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
