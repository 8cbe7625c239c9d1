"""When a bundle plans a torch build, and whether the user chose it (policy, not the command layer's)."""

from __future__ import annotations

from packaging.requirements import InvalidRequirement, Requirement

from .check import is_torch_family


def names_torch(requirements: list[str]) -> bool:
    """Whether any requirement names a torch-family project (torch, torchaudio, torchvision, torchcodec ...)."""
    for r in requirements:
        try:
            if is_torch_family(Requirement(r).name):
                return True
        except InvalidRequirement:
            continue  # a URL or path line: resolved as it is
    return False


def torch_build_request(requirements: list[str], *, cuda_option: str | None, torch_index: str | None,
                        stack_needs_cuda: bool = False, configured: str | None = None) -> tuple[str | None, bool]:
    """(the ``--cuda`` choice to plan with, or None for no planning; whether the user chose the build).

    torch without ``--cuda`` is planned anyway (config ``cuda``, default auto), so a
    bundle never gets PyPI's CUDA build by accident and a host without a GPU gets
    the cpu build where it can. A choice is explicit when ``--cuda`` (or the config)
    names a build other than auto, or ``--torch-index`` names the index: explicit
    choices are never swapped for PyPI's build when their index is unreachable.
    """
    cuda = cuda_option
    if cuda is None and (stack_needs_cuda or names_torch(requirements)):
        cuda = configured or "auto"
    if cuda is None:
        return None, False
    explicit = cuda.strip().lower() != "auto" or bool(torch_index)
    return cuda, explicit
