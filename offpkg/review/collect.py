"""What the review parts need at bundle time, read once from the fetched files.

:func:`collect` reads every wheel the bundle will carry (metadata, license files,
embedded SBOMs) and the records of a packed conda environment; :meth:`Review.gate`
applies the deny-license policy before anything is laid out; :meth:`Review.files`
gives ``sbom.cdx.json`` and ``THIRD_PARTY_NOTICES`` for the manifest to list and hash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..manifest import Package
from ..target import Target
from .licenses import WheelFacts, check_patterns, gate, read_wheel
from .notices import NOTICES_NAME, third_party_notices
from .sbom import SBOM_NAME, CondaPackage, build_sbom


@dataclass
class Review:
    facts: dict[str, WheelFacts] = field(default_factory=dict)
    conda: list[CondaPackage] = field(default_factory=list)

    def gate(self, deny: list[str]) -> None:
        """Raise LicensePolicyError naming every wheel or conda package whose license is denied."""
        patterns = check_patterns(deny)
        gate([(f.name, f.version, f.license) for f in self.facts.values()]
             + [(c.name, c.version, c.license) for c in self.conda], patterns)

    def files(self, *, targets: list[Target], packages: list[Package], requirements: list[str], created: str,
              bundle_name: str, conda_path: str | None = None) -> dict[str, str]:
        """{bundle path: text} of the review files."""
        return {
            SBOM_NAME: build_sbom(targets=targets, packages=packages, facts=self.facts, requirements=requirements,
                                  created=created, bundle_name=bundle_name, conda=self.conda or None,
                                  conda_path=conda_path),
            NOTICES_NAME: third_party_notices(packages, self.facts),
        }


def collect(wheels: dict[str, Path], conda_prefix: Path | None = None) -> Review:
    """Read ``wheels`` ({filename: path}) and, for a conda bundle, the environment's conda-meta records."""
    review = Review({fn: read_wheel(path, fn) for fn, path in sorted(wheels.items())})
    if conda_prefix is not None:
        from ..conda.env import conda_records

        review.conda = [c for c in (CondaPackage.from_record(r) for r in conda_records(conda_prefix)) if c]
    return review


def for_bundle(opts: Any, files: list[Any]) -> Review:
    """``build_bundle``'s hook: read the fetched ``files`` (``net.fetch.Fetched``) the bundle will carry
    and its conda environment's records, then apply ``opts.deny_licenses`` (LicensePolicyError)."""
    conda = opts.extra.get("conda") or {}
    review = collect({f.filename: f.path for f in files},
                     Path(conda["source_prefix"]) if conda.get("source_prefix") else None)
    review.gate(opts.deny_licenses)
    return review
