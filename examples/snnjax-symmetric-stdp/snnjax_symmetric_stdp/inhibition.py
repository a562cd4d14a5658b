r"""Global winner-take-all: at each time step only the largest potential of the layer survives.

``global_wta()(potentials)`` with time-major potentials ``[T, ...]`` returns
``potentials`` with every entry but the (first, in flat order) maximum of each
time step set to 0; with no positive potential in a step the step is all 0.
A pure function (a :class:`snnjax.inhibition.Inhibition`), traced into the step.

It is usable by name wherever an experiment takes an inhibition scheme, e.g. as
``conv-mnist``'s winner selection of the STDP layers (``inhibition = "global-wta"``
in a TOML file): the conv layers call it as ``inhibit(potentials [T, F, H, W],
spikes)`` and let the neurons it keeps learn (up to the layer's ``k``, one per
feature map, earliest first).
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float


def global_wta():
    """Global winner-take-all: per time step only the largest positive potential survives."""

    def inhibit(potentials: Float[Array, "T ..."], spikes=None) -> Float[Array, "T ..."]:
        del spikes
        t = potentials.shape[0]
        flat = potentials.reshape(t, -1)
        winner = jnp.argmax(flat, axis=1)
        keep = (jnp.arange(flat.shape[1])[None, :] == winner[:, None]) & (flat > 0)
        return jnp.where(keep, flat, 0).reshape(potentials.shape)

    return inhibit
