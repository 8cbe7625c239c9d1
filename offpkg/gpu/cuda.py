"""The CUDA planning API under its historical name (``offpkg.gpu.cuda``).

The code lives by concept: :mod:`.facts` (the data and its parsers), :mod:`.plan`
(NVIDIA planning), :mod:`.rocm` (AMD), :mod:`.pypi` (facts read from PyPI's wheels),
:mod:`.check` (bundles and hosts against a plan). This module re-exports what
callers used before the split.
"""

from __future__ import annotations

from .check import (LABELLED, TORCH_FAMILY, check_host, is_cuda_runtime, is_torch_family,  # noqa: F401
                    manifest_record)
from .facts import (DATA_FORMAT, DEFAULT_INDEX_BASE, CudaDataError, CudaNoFitError, compat_floor,  # noqa: F401
                    covers, data_releases, load_data, load_rocm, own_min_driver, parse_cc, parse_driver, release,
                    series, torch_releases, validate_data, variants_for)
from .plan import CudaPlan, cpu_plan, gpu_inputs, plan, plan_for_target, pypi_build_plan  # noqa: F401

_series = series
