"""Exceptions raised by snnjax.

Every error a user can provoke with bad input is a subclass of :class:`SnnjaxError`,
raised *before* any compilation starts, with a message that says what is wrong and
how to fix it. The CLI prints these messages without a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SnnjaxError(Exception):
    """Base class of every error snnjax raises on purpose."""


class ConfigError(SnnjaxError, ValueError):
    """An invalid configuration value, key or combination of values."""


class InputError(SnnjaxError, ValueError):
    """Invalid array input: wrong shape, dtype, NaN/inf or negative intensities."""


class PluginError(SnnjaxError, LookupError):
    """A plugin that cannot be found, loaded or registered."""


class DataError(SnnjaxError):
    """A dataset that cannot be read or is empty."""


class DataUnavailableError(DataError):
    """A dataset that is not available on this machine (offline, not prepared)."""


class CheckpointError(SnnjaxError):
    """A checkpoint that is corrupt or does not match the run it should resume."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""
