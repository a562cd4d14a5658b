"""What evolves (:class:`NetworkState`), what a presentation returns (:class:`PresentationOutput`), and the initial state."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from snnjax.errors import ConfigError
from snnjax.plasticity import LearningRule

from ..neurons import CondLIFState
from .config import NetworkConfig, delay_steps

class NetworkState(NamedTuple):
    """Everything that evolves (a pytree; one per seed under ``vmap``).

    Attributes:
        w: ``[n_input, n_exc]`` S1 weights.
        d2: ``int32[n_exc]`` S2 delays in steps.
        d3: ``int32[n_inh, n_exc]`` S3 delays in steps (−1 on the diagonal: no synapse);
            ``int32[0, 0]`` when S3 has no delays (``s3_delay_max_ms = 0``).
        exc, inh: neuron states.
        rule_state: the learning rule's state.
        buf2: ``[ring2, n_exc]`` excitatory spikes of the last ``ring2`` steps (row ``step % ring2``).
        buf3: ``[ring3 + 1, n_exc]`` pending S3 conductance increments (ring buffer; the last row is
            a spare that absorbs padded list entries and is never read).
        step: int32 global step counter (time = step·dt).
    """

    w: jnp.ndarray
    d2: jnp.ndarray
    d3: jnp.ndarray
    exc: CondLIFState
    inh: CondLIFState
    rule_state: Any
    buf2: jnp.ndarray
    buf3: jnp.ndarray
    step: jnp.ndarray


class PresentationOutput(NamedTuple):
    """Result of one presentation.

    Attributes:
        exc_counts, inh_counts: ``int32`` spikes per neuron (of the last presentation when repeated).
        n_presentations: how many times the image was shown (D&C repeat rule; else 1).
        dense_steps: always 0 (kept for compatibility; the sampler no longer draws steps densely).
        monitors: dict of recorded ``[T, n]`` arrays (state at the start of each step), or ``None``.
        dropped_events: ``int32[3]`` events that did not fit the padded per-step lists and were
            **not** processed: input spikes (``k_in``), excitatory spikes seen by the plasticity
            rule (``k_post``; general plasticity path only, the deferred path has no such list),
            inhibitory spikes (``k_inh``; only with S3 delays); summed over repeated presentations.
            The presentation is exact when all are 0.
    """

    exc_counts: jnp.ndarray
    inh_counts: jnp.ndarray
    n_presentations: jnp.ndarray
    dense_steps: jnp.ndarray
    monitors: dict | None = None
    dropped_events: jnp.ndarray | None = None


def check_dropped(out: PresentationOutput, cfg: NetworkConfig | None = None) -> None:
    """Raise :class:`~snnjax.errors.ConfigError` if any event was dropped (concrete outputs only)."""
    d = np.asarray(out.dropped_events).reshape(-1, 3).sum(0)
    if d.sum() == 0:
        return
    names = [f"{n} {what} (raise {knob}{'' if cfg is None else f', now {getattr(cfg, knob)}'})"
             for n, what, knob in zip(d, ("input spikes", "excitatory spikes", "inhibitory spikes"),
                                      ("k_in", "k_post", "k_inh")) if n]
    raise ConfigError("events did not fit the per-step lists and were dropped: " + "; ".join(names)
                      + ". The results are not exact; raise these NetworkConfig fields.")


def init_network(key, cfg: NetworkConfig, rule: LearningRule, dtype=None) -> NetworkState:
    """Draw initial weights and delays and build the initial state."""
    fdt = jnp.zeros((), float).dtype if dtype is None else jnp.dtype(dtype)
    k_w, k_2, k_3 = jax.random.split(key, 3)
    shape = (cfg.n_input, cfg.n_exc)
    if cfg.w_init == "uniform":
        w = jax.random.uniform(k_w, shape, fdt, cfg.w_init_low, cfg.w_init_high)
    else:
        w = (jax.random.uniform(k_w, shape, fdt) + 0.01) * 0.3
    d2 = delay_steps(jax.random.uniform(k_2, (cfg.n_exc,), fdt, 0.0, cfg.s2_delay_max_ms), cfg.dt_ms)
    d2 = jnp.minimum(d2, cfg.ring2 - 1)
    if cfg.ring3 == 1:  # no S3 delays: no N × N delay matrix (it would dominate the memory at large N)
        d3 = jnp.zeros((0, 0), jnp.int32)
    else:
        d3 = delay_steps(jax.random.uniform(k_3, (cfg.n_inh, cfg.n_exc), fdt, 0.0, cfg.s3_delay_max_ms), cfg.dt_ms)
        d3 = jnp.where(jnp.eye(cfg.n_exc, dtype=bool), -1, jnp.minimum(d3, cfg.ring3 - 1))
    return NetworkState(
        w=w,
        d2=d2,
        d3=d3,
        exc=cfg.exc.init(cfg.n_exc, fdt),
        inh=cfg.inh.init(cfg.n_inh, fdt),
        rule_state=rule.init(w),
        buf2=jnp.zeros((cfg.ring2, cfg.n_exc), fdt),
        buf3=jnp.zeros((cfg.ring3 + 1, cfg.n_exc), fdt),
        step=jnp.zeros((), jnp.int32),
    )


def with_delays(state: NetworkState, cfg: NetworkConfig, d2_steps, d3_steps) -> NetworkState:
    """Replace the delays (in steps; −1 or any negative value on S3's diagonal)."""
    d2 = jnp.asarray(d2_steps, jnp.int32)
    d3 = jnp.asarray(d3_steps, jnp.int32)
    if int(jnp.max(d2)) >= cfg.ring2 or int(jnp.max(d3)) >= cfg.ring3:
        raise ConfigError("delays exceed the configured maxima (s2_delay_max_ms / s3_delay_max_ms)")
    d3 = jnp.zeros((0, 0), jnp.int32) if cfg.ring3 == 1 else jnp.where(jnp.eye(cfg.n_exc, dtype=bool), -1, d3)
    return state._replace(d2=d2, d3=d3)
