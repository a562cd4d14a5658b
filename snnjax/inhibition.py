r"""The inhibition protocol: what a ``snnjax_inhibitions`` factory returns.

An inhibition scheme is a pure function of a layer's potentials (and, where it
needs them, its spikes), called inside the time step::

    inhibit = registry.create("inhibition", "k-wta", k=5, radius=2)
    winners = inhibit(potentials, spikes)

What it returns is the scheme's: the potentials with the losers silenced
(``pointwise``: per position only the earliest-firing feature survives) or the
winners' indices (``k-wta``, ``snnjax_plugins.conv.inhibition.Winners``). An experiment that
takes an inhibition by name says how it calls the scheme and reads its result:
``conv-mnist``'s STDP layers call ``inhibit(potentials [T, F, H, W], spikes)`` and
take either form (``snnjax_plugins.conv.inhibition.winners_of``; docs/plugins.md).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from jaxtyping import Array


@runtime_checkable
class Inhibition(Protocol):
    """``inhibit(potentials, *spikes) -> result``: a pure function, traced into the step."""

    def __call__(self, potentials: Array, *args: Any) -> Any:
        """Apply the scheme to ``potentials`` (time-major ``[T, F, H, W]`` for the conv layers' built-ins)."""
        ...


__all__ = ["Inhibition"]
