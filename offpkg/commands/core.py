"""The top-level verbs of the core round trip."""

from .bundle import bundle
from .freeze import freeze
from .inspect_ import inspect_
from .install import install
from .probe import probe
from .verify import verify

COMMANDS = [probe, freeze, bundle, verify, install, inspect_]
