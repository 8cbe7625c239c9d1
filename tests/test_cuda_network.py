"""Facts read from the real PyPI (skipped when it is unreachable): the metadata of torch 2.14 and 2.15.

../shared/reference/cuda.md (top section, read from the wheels on 2026-11-30): PyPI's torch 2.11-2.14
is a CUDA 13.0 build on Linux x86_64 and aarch64, 2.15 a CUDA 13.2 build, and 2.10's aarch64 wheel is
CPU-only. offpkg reads this from each wheel's PEP 658 metadata (or a range read), never the wheel.
"""

from __future__ import annotations

import pytest

from offpkg.gpu import facts
from offpkg.gpu.pypi import PypiBuilds
from offpkg.net.index import IndexClient

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def builds() -> PypiBuilds:
    return PypiBuilds(IndexClient(["https://pypi.org/simple"], timeout=30), ("x86_64", "aarch64"))


def test_torch_2_14_and_2_15_from_their_metadata(builds: PypiBuilds) -> None:
    assert {"2.14", "2.15"} <= set(builds)
    assert dict(builds["2.14"]) == {"x86_64": "13.0", "aarch64": "13.0"}
    assert dict(builds["2.15"]) == {"x86_64": "13.2", "aarch64": "13.2"}
    assert builds.notes == []


def test_the_data_agrees_with_pypi(builds: PypiBuilds) -> None:
    for s in ("2.10", "2.14", "2.15"):
        assert facts.release(s).pypi == dict(builds[s]), s
    # what the planner sees with the observed facts: no contradiction note for these releases
    for s in ("2.14", "2.15"):
        assert facts.release(s, builds).assumed == ()
