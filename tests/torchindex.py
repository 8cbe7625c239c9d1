"""A local package index laid out like the PyTorch wheel index, plus a PyPI-like default index.

Layout under ``root`` (served over HTTP on 127.0.0.1 by the tests)::

    whl/cpu/<project>/index.html     torch 2.13.0+cpu, 2.12.0+cpu, torchvision 0.28.0+cpu
    whl/cu126/<project>/index.html   torch 2.13.0+cu126, 2.12.0+cu126, torchvision 0.28.0/0.27.0+cu126,
                                     nvidia-*-cu12 runtime wheels, triton
    whl/cu130/<project>/index.html   torch 2.13.0+cu130, cuda-toolkit 13.0.2 and its component wheels, triton
    pypi/simple/<project>/...        PyPI's default build: torch 2.13.0 and 2.13.1 (no label, CUDA 13.0),
                                     torchvision 0.28.0/0.28.1, the same runtime wheels, ordinary packages

Each variant path is a PEP 503 simple root. Every wheel is tiny but real (pkgfactory);
torch's METADATA requires its NVIDIA runtime wheels like the real ones do: the cu126
build ``nvidia-cublas-cu12==12.6.4.1; platform_system == "Linux"`` and friends, the
CUDA 13 builds ``cuda-toolkit[cublas,cudart]==13.0.2``, whose extras pull the
component wheels (``nvidia-cublas==13.*`` style). Files shared by several indexes
are byte-identical copies, as on the real indexes.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import re
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename

from pkgfactory import Dist, build_wheel

TORCH_TAG = "cp311-cp311-manylinux_2_28_x86_64"
NV_TAG = "py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64"
LINUX = '; platform_system == "Linux"'

CU126_RUNTIME = [("nvidia-cublas-cu12", "12.6.4.1"), ("nvidia-cuda-runtime-cu12", "12.6.77")]
CU130_COMPONENTS = [("nvidia-cublas", "13.1.0.3", "cublas"), ("nvidia-cuda-runtime", "13.0.96", "cudart"),
                    ("nvidia-cufft", "12.0.0.61", "cufft")]
TRITON = ("triton", "3.7.0")


@dataclass
class ExtrasDist(Dist):
    """A Dist whose METADATA declares ``Provides-Extra`` (pip ignores undeclared extras)."""

    extras: tuple[str, ...] = ()

    def metadata(self) -> str:
        head, _, rest = super().metadata().partition("\n")
        return head + "\n" + "".join(f"Provides-Extra: {e}\n" for e in self.extras) + rest


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with single-range ``Range: bytes=a-b`` / ``bytes=-n`` support, and a request log
    (path, Range header, bytes sent) on the server, so tests can show a wheel was not downloaded whole."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.translate_path(self.path)
        rng = self.headers.get("Range")
        if not os.path.isfile(path):
            self.server.log.append((self.path, rng, 0))  # type: ignore[attr-defined]
            return super().do_GET()
        data = Path(path).read_bytes()
        start, end, status = 0, len(data) - 1, 200
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", (rng or "").strip())
        if m and (m.group(1) or m.group(2)):
            if not m.group(1):
                start = max(0, len(data) - int(m.group(2)))
            else:
                start = int(m.group(1))
                end = min(end, int(m.group(2))) if m.group(2) else end
            status = 206
        body = data[start:end + 1]
        self.server.log.append((self.path, rng, len(body)))  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.end_headers()
        self.wfile.write(body)


def serve_ranges(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve ``root`` on 127.0.0.1 with range requests; ``server.log`` lists (path, Range, bytes sent)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(RangeHandler, directory=str(root)))
    server.daemon_threads = True
    server.log = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@dataclass
class TorchIndex:
    root: Path
    base: str  # http://127.0.0.1:PORT (set once served)
    log: list = field(default_factory=list)  # the server's request log (serve_ranges)

    @property
    def whl(self) -> str:
        """The PyTorch index base (``--torch-index``): variants below it."""
        return f"{self.base}/whl"

    @property
    def pypi(self) -> str:
        return f"{self.base}/pypi/simple"

    @property
    def pypi_new(self) -> str:
        """A PyPI-like index whose newest torch is newer than offpkg's data (see build_newer_files)."""
        return f"{self.base}/pypi-new/simple"

    def variant(self, name: str) -> str:
        return f"{self.whl}/{name}"


def _torch_requires(variant: str) -> list[str]:
    reqs = ["filelock"]
    if variant == "cu126":
        reqs += [f"{n}=={v}{LINUX}" for n, v in CU126_RUNTIME] + [f"{TRITON[0]}=={TRITON[1]}{LINUX}"]
    elif variant == "cu130":
        reqs += [f"cuda-toolkit[cublas,cudart]==13.0.2{LINUX}", f"{TRITON[0]}=={TRITON[1]}{LINUX}"]
    return reqs


def build_files(store: Path) -> dict[str, list[Path]]:
    """Build every wheel once into ``store``; returns {index name: [files]}."""
    store.mkdir(parents=True, exist_ok=True)
    out: dict[str, list[Path]] = {"cpu": [], "cu126": [], "cu130": [], "pypi": []}

    def w(dist: Dist, tag: str, *where: str) -> Path:
        p = build_wheel(dist, store, tag)
        for idx in where:
            out[idx].append(p)
        return p

    # Runtime wheels of the CUDA 12.6 build: on its index and on PyPI (the same file).
    for n, v in CU126_RUNTIME:
        w(Dist(n, v), NV_TAG, "cu126", "pypi")
    # CUDA 13: the cuda-toolkit metapackage whose extras pull component wheels (nvidia-cublas==13.* style).
    ct_reqs = [f"{n}=={v.split('.')[0]}.*; extra == \"{extra}\"" for n, v, extra in CU130_COMPONENTS]
    w(ExtrasDist("cuda-toolkit", "13.0.2", ct_reqs, extras=tuple(e for _, _, e in CU130_COMPONENTS)),
      "py3-none-any", "cu130", "pypi")
    for n, v, _ in CU130_COMPONENTS:
        w(Dist(n, v), NV_TAG, "cu130", "pypi")
    w(Dist(*TRITON), "cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64", "cu126", "cu130", "pypi")
    w(Dist("filelock", "3.20.0"), "py3-none-any", "cpu", "cu126", "cu130", "pypi")
    # torch builds, labelled on the variant indexes.
    for variant in ("cpu", "cu126", "cu130"):
        w(Dist("torch", f"2.13.0+{variant}", _torch_requires(variant)), TORCH_TAG, variant)
    for variant in ("cpu", "cu126"):
        w(Dist("torch", f"2.12.0+{variant}", _torch_requires(variant)), TORCH_TAG, variant)
    # torchvision of each build: each release requires its exact torch.
    w(Dist("torchvision", "0.28.0+cpu", ["torch==2.13.0"]), TORCH_TAG, "cpu")
    w(Dist("torchvision", "0.28.0+cu126", ["torch==2.13.0"]), TORCH_TAG, "cu126")
    w(Dist("torchvision", "0.27.0+cu126", ["torch==2.12.0"]), TORCH_TAG, "cu126")
    # torchaudio and torchcodec of each build (lockstep with torch; torchcodec names no torch in its metadata).
    w(Dist("torchaudio", "2.13.0+cpu", ["torch==2.13.0"]), TORCH_TAG, "cpu")
    w(Dist("torchaudio", "2.13.0+cu126", ["torch==2.13.0"]), TORCH_TAG, "cu126")
    w(Dist("torchaudio", "2.13.0", ["torch==2.13.0"]), TORCH_TAG, "pypi")
    w(Dist("torchaudio", "2.13.1", ["torch==2.13.1"]), TORCH_TAG, "pypi")
    w(Dist("torchcodec", "0.9.0+cpu"), TORCH_TAG, "cpu")
    w(Dist("torchcodec", "0.9.0"), TORCH_TAG, "pypi")
    # PyPI's default build: no label, CUDA 13.0, and a newer 2.13.1 the variant indexes do not have.
    w(Dist("torch", "2.13.0", _torch_requires("cu130")), TORCH_TAG, "pypi")
    w(Dist("torch", "2.13.1", _torch_requires("cu130")), TORCH_TAG, "pypi")
    w(Dist("torchvision", "0.28.0", ["torch==2.13.0"]), TORCH_TAG, "pypi")
    w(Dist("torchvision", "0.28.1", ["torch==2.13.1"]), TORCH_TAG, "pypi")
    # Ordinary packages.
    w(Dist("alpha", "1.0", ["beta>=1.0"]), "py3-none-any", "pypi")
    w(Dist("beta", "1.1", ["gamma"]), "py3-none-any", "pypi")
    w(Dist("gamma", "2.0"), "py3-none-any", "pypi")
    import ensurepip

    for whl in (Path(ensurepip.__file__).parent / "_bundled").glob("pip-*.whl"):
        shutil.copy(whl, store / whl.name)
        out["pypi"].append(store / whl.name)
    return out


def write_project_pages(files: list[Path], root: Path, *, metadata: bool = True) -> None:
    """A PEP 503 simple root at ``root``: ``root/<project>/index.html`` linking the files (with #sha256).

    The files are copied under ``root/../files-<name>/``; with ``metadata`` each wheel also gets a
    PEP 658 ``<wheel>.metadata`` file beside it (as download.pytorch.org serves them).
    """
    store = root.parent / f"files-{root.name}"
    store.mkdir(parents=True, exist_ok=True)
    projects: dict[str, list[Path]] = {}
    for f in files:
        dest = store / f.name
        shutil.copyfile(f, dest)
        if metadata and f.name.endswith(".whl"):
            import zipfile

            with zipfile.ZipFile(dest) as z:
                meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
                (store / (f.name + ".metadata")).write_bytes(z.read(meta))
        projects.setdefault(canonicalize_name(parse_wheel_filename(f.name)[0]), []).append(dest)
    root.mkdir(parents=True, exist_ok=True)
    (root / "index.html").write_text("<!DOCTYPE html><html><body>\n"
                                     + "".join(f'<a href="{n}/">{n}</a>\n' for n in sorted(projects))
                                     + "</body></html>\n")
    for name, fs in projects.items():
        d = root / name
        d.mkdir(exist_ok=True)
        links = []
        for f in sorted(fs):
            digest = hashlib.sha256(f.read_bytes()).hexdigest()
            # PEP 503: the href is URL-quoted; "+" must be %2B-safe for some clients, so quote it.
            rel = os.path.relpath(f, d).replace(os.sep, "/").replace("+", "%2B")
            links.append(f'<a href="{rel}#sha256={digest}">{f.name}</a>')
        (d / "index.html").write_text("<!DOCTYPE html><html><body>\n" + "\n".join(links) + "\n</body></html>\n")


ARM_TAG = "cp311-cp311-manylinux_2_28_aarch64"
NEW_TORCH = "2.16.0"  # newer than offpkg's data: planned from its metadata


def build_newer_files(store: Path) -> dict[str, list[Path]]:
    """A PyPI-like index whose newest torch (2.16.0, CUDA 13.2 by its metadata, x86_64 and aarch64) is newer
    than offpkg's data, and a ROCm variant index (rocm6.3: torch 2.7.1+rocm6.3 and pytorch-triton-rocm)."""
    out: dict[str, list[Path]] = {"pypi-new": [], "rocm6.3": []}
    reqs = [f"cuda-toolkit[cublas]==13.2.2{LINUX}", "filelock"]
    for tag in (TORCH_TAG, ARM_TAG):
        out["pypi-new"].append(build_wheel(Dist("torch", NEW_TORCH, reqs), store, tag))
    out["pypi-new"].append(build_wheel(ExtrasDist("cuda-toolkit", "13.2.2",
                                                  ['nvidia-cublas==13.*; extra == "cublas"'], extras=("cublas",)),
                                       store, "py3-none-any"))
    out["pypi-new"].append(build_wheel(Dist("nvidia-cublas", "13.3.0.5"), store, "py3-none-manylinux_2_27_x86_64"))
    out["pypi-new"].append(build_wheel(Dist("nvidia-cublas", "13.3.0.5"), store, "py3-none-manylinux_2_27_aarch64"))
    out["pypi-new"].append(build_wheel(Dist("filelock", "3.20.0"), store, "py3-none-any"))
    out["rocm6.3"].append(build_wheel(Dist("torch", "2.7.1+rocm6.3", ["pytorch-triton-rocm==3.3.1", "filelock"]),
                                      store, TORCH_TAG))
    out["rocm6.3"].append(build_wheel(Dist("pytorch-triton-rocm", "3.3.1"), store, TORCH_TAG))
    out["rocm6.3"].append(build_wheel(Dist("filelock", "3.20.0"), store, "py3-none-any"))
    return out


def build_torch_index(root: Path) -> TorchIndex:
    """Lay out ``root/whl/{cpu,cu126,cu130}`` and ``root/pypi/simple`` (serve ``root`` to use it)."""
    files = build_files(root / "store")
    for variant in ("cpu", "cu126", "cu130"):
        # cu126 without PEP 658 metadata: torchvision is then matched by reading the wheel itself.
        write_project_pages(files[variant], root / "whl" / variant, metadata=variant != "cu126")
    write_project_pages(files["pypi"], root / "pypi" / "simple")
    newer = build_newer_files(root / "store-new")
    write_project_pages(newer["pypi-new"], root / "pypi-new" / "simple")
    write_project_pages(newer["rocm6.3"], root / "whl" / "rocm6.3")
    return TorchIndex(root, "")


def target_json(driver: str | None = None, caps: list[str] | None = None, *, python: str = "3.11",
                platform: str = "manylinux_2_28_x86_64") -> dict:
    """A target description (as `offpkg probe` writes) with the given NVIDIA facts."""
    from offpkg.target import Target

    data = Target.from_options(python, [platform]).to_json()
    if driver or caps:
        data["gpu"] = {"vendor": "nvidia", "driver_version": driver, "cuda_max": None, "source": "env",
                       "devices": [{"name": f"GPU {i}", "compute_cap": c} for i, c in enumerate(caps or [])]}
    return data


def wheel_names(bundle: Path) -> list[str]:
    return sorted(p.name for p in (bundle / "wheels").iterdir())


def amd_target_json(*gfx: str, rocm: str | None = None, python: str = "3.11",
                    platform: str = "manylinux_2_28_x86_64") -> dict:
    """A target description with AMD GPUs of the given gfx targets (as `offpkg probe` writes on such a host)."""
    from offpkg.target import Target

    data = Target.from_options(python, [platform]).to_json()
    data["gpu"] = {"vendor": "amd", "rocm_version": rocm, "source": "env",
                   "devices": [{"name": f"AMD GPU {i}", "gfx": g} for i, g in enumerate(gfx)]}
    return data
