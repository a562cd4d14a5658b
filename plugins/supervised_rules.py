r"""Supervised local spiking rules beyond the thesis' Method 2: ``segment-oja``.

The thesis' segment rule (``segment-supervised``: STDP on the label's segment, All-LTD on
the others) needs the label's neurons to win the competition before they can learn, and
All-LTD depresses every pixel the other classes share. ``segment-oja`` is a spike-driven
form of Oja's rule :math:`\Delta w = \eta\,y\,(x - y\,w)` in which the label acts as a
teacher for the postsynaptic term :math:`y\,x`:

* **on a presynaptic spike** of input :math:`i`, every synapse onto the label's segment
  (``activity.gate > 0``) is potentiated, :math:`w_{ij} \leftarrow \min(w_{ij} + \eta_\text{pre}, w_\max)`
  (the teacher-forced Hebbian term: the label's neurons count as active while their
  label is shown); the synapses onto the other segments are depressed,
  :math:`w_{ij} \leftarrow w_{ij}(1 - \eta_\text{other})` (0 by default: they keep their weights);
* **on a postsynaptic spike** of a neuron :math:`j` of the label's segment, all its input
  synapses shrink, :math:`w_{ij} \leftarrow w_{ij}(1 - \eta_\text{post})` (heterosynaptic,
  multiplicative; Oja's :math:`-y^2 w`).

Each update uses only the presynaptic spike, the postsynaptic neuron's own spike and its
supervisory gate (the signal that already selects the thesis' rule per segment), and the
synapse's own weight: local, spike-based, no gradients. With input rates :math:`r_i` and a
firing rate :math:`\nu_j \approx \kappa\, w_j\cdot r` that grows with the drive, the fixed
point :math:`\eta_\text{pre} \bar r_i = \eta_\text{post} \nu_j w_{ij}` gives
:math:`w_j \propto \bar r` (the class-mean image) with
:math:`\lVert w_j\rVert_2^2 = \eta_\text{pre}/(\eta_\text{post}\kappa)` the same for every neuron:
a cosine template, which the spiking network then reads out as the segment with the most
spikes. A neuron that does not fire keeps growing until it does (no silent segments).

All rates are per spike (dimensionless, weights in the thesis' units, gmax 0.05) and are
multiplied by ``activity.gain`` (0 at test: no change).
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float

from snnjax.errors import ConfigError
from snnjax.hookspecs import hookimpl
from snnjax.plasticity import Activity, LearningRule

__all__ = ["segment_oja"]


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"segment-oja: {name} must be a positive integer, got {value!r}")


def segment_oja(
    *,
    n_classes: int = 3,
    eta_pre: float = 1e-4,
    eta_post: float = 0.05,
    eta_other: float = 0.0,
    w_min: float = 0.0,
    w_max: float = 0.05,
) -> LearningRule:
    r"""Label-taught spike-driven Oja rule (see the module docs).

    Args:
        n_classes: number of segments (the excitatory count must be a multiple of it).
        eta_pre: potentiation of a label-segment synapse per presynaptic spike (weight units).
            The defaults (1e-4, 0.05) are the best of the settings compared in
            ``docs/reproductions/method2.md`` (with ``adaptive_threshold = false``).
        eta_post: fraction of every input weight a label-segment neuron loses per own spike.
        eta_other: fraction a synapse onto another segment loses per presynaptic spike.
        w_min, w_max: hard weight bounds.
    """
    _positive_int("n_classes", n_classes)
    for name, value in (("eta_pre", eta_pre), ("eta_post", eta_post), ("eta_other", eta_other)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value:
            raise ConfigError(f"segment-oja: {name} must be a number ≥ 0, got {value!r}")
    for name, value in (("eta_post", eta_post), ("eta_other", eta_other)):
        if value >= 1:
            raise ConfigError(f"segment-oja: {name} is a fraction lost per spike and must be < 1, got {value!r}")
    if not w_min < w_max:
        raise ConfigError(f"segment-oja: weight bounds need w_min < w_max, got {w_min}, {w_max}")

    def init(w: Float[Array, "n_pre n_post"]):
        if w.shape[-1] % n_classes:
            raise ConfigError(
                f"segment-oja: {w.shape[-1]} postsynaptic neurons cannot be split into {n_classes} equal "
                f"segments (one per class); choose a neuron count that is a multiple of n_classes."
            )
        return ()

    def update(w: Float[Array, "n_pre n_post"], state, act: Activity):
        dtype = w.dtype
        n_post = w.shape[1]
        label = jnp.ones((n_post,), bool) if act.gate is None else jnp.asarray(act.gate, dtype) > 0
        gain = jnp.asarray(act.gain, dtype)
        lo, hi = jnp.asarray(w_min, dtype), jnp.asarray(w_max, dtype)
        pot = gain * jnp.asarray(eta_pre, dtype)
        keep_other = 1 - gain * jnp.asarray(eta_other, dtype)
        keep_post = 1 - gain * jnp.asarray(eta_post, dtype)
        post = jnp.asarray(act.post, bool)

        def on_pre(rows):  # the label's segment potentiates, the others shrink
            return jnp.clip(jnp.where(label[None, :], rows + pot, rows * keep_other), lo, hi)

        if act.pre_idx is not None and getattr(act, "idx_complete", False):
            # event-driven: only the rows of the spiking inputs (the list holds every spike)
            rows = w.at[act.pre_idx].get(mode="fill", fill_value=0)
            w = w.at[act.pre_idx].set(on_pre(rows), mode="drop")
        else:
            w = jnp.where(jnp.asarray(act.pre, bool)[:, None], on_pre(w), w)
        # on_post: a spiking neuron of the label's segment scales all its input weights down (stays in bounds)
        factor = jnp.where(post & label, keep_post, jnp.ones((), dtype))
        w = jnp.maximum(w * factor[None, :], lo)
        return w, state

    return LearningRule(init, update)


@hookimpl
def snnjax_learning_rules():
    return {"segment-oja": segment_oja}
