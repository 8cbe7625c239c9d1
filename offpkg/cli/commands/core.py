"""The top-level verbs of the core round trip."""

from .bundle import bundle
from .freeze import freeze
from .inspect_ import inspect_
from .install import install
from .lock import lock
from .probe import probe
from .sign import sign
from .verify import verify

COMMANDS = [probe, freeze, lock, bundle, verify, install, inspect_, sign]
