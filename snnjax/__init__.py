"""snnjax: spiking neural networks with local learning rules, in JAX."""

from .api import RunResult, RunStopped, run
from .errors import (
    CheckpointError,
    ConfigError,
    DataError,
    DataUnavailableError,
    InputError,
    PluginError,
    SnnjaxError,
)
from .hookspecs import hookimpl
from .plugins import build_registry, get_registry

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DataUnavailableError",
    "InputError",
    "PluginError",
    "RunResult",
    "RunStopped",
    "SnnjaxError",
    "build_registry",
    "get_registry",
    "hookimpl",
    "run",
]
