r"""The encoder protocol: what a ``snnjax_encoders`` factory returns.

An encoder maps an image to spikes with an explicit ``jax.random`` key (ignored
by deterministic encoders) and pure functions only::

    enc = registry.create("encoder", "poisson", max_rate_hz=63.75, dt_ms=0.1)
    raster = enc.encode(key, image, n_steps)   # bool[n_steps, n_pixels]

The shape of the result is the encoder's: a rate raster ``bool[T, n]``
(``snnjax_plugins.encoders.PoissonEncoder``, pixel values 0–255, rates in Hz)
or a latency spike wave ``[T, C, H, W]`` (``snnjax_plugins.conv.frontend``'s
DoG encoder, whose ``encode(key, image)`` takes its time steps from its
parameters). Extra positional arguments are the encoder's own.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from jaxtyping import Array


@runtime_checkable
class Encoder(Protocol):
    """``encode(key, image, *args) -> spikes``, a pure function of its arguments."""

    def encode(self, key: Array | None, image: Array, *args: Any) -> Array:
        """Spikes of ``image``; ``key`` draws any randomness (``None`` for a deterministic encoder)."""
        ...


__all__ = ["Encoder"]
