r"""The Diehl & Cook family network: Poisson inputs → S1 (plastic) → exc LIF → S2 → inh LIF → S3 → exc.

* S1: input → excitatory, all-to-all, plastic by any :class:`~snnjax.plasticity.LearningRule`,
  no delay, ``ge += w``;
* S2: excitatory ``j`` → inhibitory ``j`` (one-to-one), ``ge += w_ei``, delays;
* S3: inhibitory ``i`` → excitatory ``j ≠ i`` (all-but-self), ``gi += w_ie``, delays.

One step follows Brian 2's schedule (see the Brian 2 fixtures' README):
state update of both populations → thresholds → synapses (all ``on_pre``
pathways — S1 transmission, S2, S3 — then the rule, whose own order is on_pre
before on_post) → resets. Delays are whole steps, ``int(d/dt + 0.5)``; a spike
of step ``n`` with delay ``k`` arrives in the synapse slot of step ``n + k``
(``k = 0``: the same step), through ring buffers.

Everything is event-driven and the step contains no loop: the spiking inputs of
a step are a padded index list of length ``k_in``, drawn for the whole
presentation before the time loop (:func:`~snnjax_plugins.encoders.sample_table`);
S1 transmission and the rule's on_pre updates touch only their rows; only the first
``k_in_chunk`` list entries are processed every step, the rest (and S3's list) inside a
``lax.cond`` taken only when it holds a spike, with :func:`batch_any` as predicate so that the
branch is skipped under ``vmap`` too when no seed needs it. Events
beyond a list's length are **not** processed but counted
(``PresentationOutput.dropped_events``; :func:`check_dropped` raises): a run is
exact when the count is 0, and the defaults make overflow astronomically
unlikely at the configured rates (``docs/performance.md``).

Two plasticity paths (``NetworkConfig.plasticity``):

* deferred (``"auto"`` picks it for the built-in hard-bounded trace rules:
  ``stdp``, ``all_ltd``, merged ``segment_supervised``, ``stdp_dc15``, each also
  chained with a lazy ``use_it_or_lose_it``): on_post updates are summed per neuron
  and applied to a weight row only when its input spikes (before transmission
  reads it; the lazy decay is applied there too) and at the end of short blocks
  (``lazy_block_ms``); identical to the per-step rule up to float rounding
  (see :class:`~snnjax_plugins.rules.LazyTrace`);
* general (``"reference"``, or any other rule): the rule's ``prepare`` and
  ``update`` every step, with the rule's on_post touching the columns of the
  spiking excitatory neurons (padded list of length ``k_post``).

Public pure functions: :func:`init_network`, :func:`present` (one image, Poisson
input drawn inside), :func:`present_raster` (given input raster; used by the
fixtures), :func:`present_many` (a scan over images). Presets:
:func:`thesis_config`, :func:`dc15_config`. Times in ms, voltages in mV.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_batching import custom_vmap

from snnjax.errors import ConfigError, InputError
from snnjax.plasticity import Activity, LearningRule

from .encoders import FAR, InputTable, PoissonEncoder, check_image, raster_table, sample_table
from .neurons import DC15_EXC, DC15_INH, THESIS_EXC, THESIS_INH, CondLIFState, ConductanceLIF
from .rules import LazyTrace, complete_event_lists, decay_factor, lazy_form
from .regularizers import lazy_factor

RECORDABLE = ("exc_v", "exc_ge", "exc_gi", "exc_vt", "exc_theta", "inh_v", "inh_ge", "exc_spikes", "inh_spikes")


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Static configuration of the network (hashable: a static argument of ``jax.jit``).

    Attributes:
        n_input, n_exc: population sizes (``n_inh = n_exc``).
        dt_ms, t_present_ms, t_rest_ms: time step; input phase; silent rest phase.
        exc, inh: neuron models (:class:`~snnjax_plugins.neurons.ConductanceLIF`).
        w_ei, w_ie: S2 (exc→inh) and S3 (inh→exc) weights.
        s2_delay_max_ms, s3_delay_max_ms: delays drawn ``U(0, max)`` per synapse (0 = none).
        w_init: ``"uniform"`` (``U(w_init_low, w_init_high)``) or ``"dc15"`` (``(U(0,1) + 0.01)·0.3``).
        norm_target: if set, each excitatory neuron's input weights are scaled to this column
            sum before every presentation (D&C: 78).
        max_rate_hz: input rate at pixel 255 (at intensity ``intensity_start``).
        intensity_start, intensity_step, min_spikes, max_repeats: D&C's rule: while a
            presentation gives fewer than ``min_spikes`` excitatory spikes, raise the
            intensity by ``intensity_step`` and present again (at most ``max_repeats`` extra
            times; ``min_spikes = 0`` turns it off). Rates scale as ``intensity/intensity_start``.
        reset_between_images: reset neuron states (not weights, not traces) before each image.
        k_in, k_post, k_inh: lengths of the padded per-step event lists: input spikes, excitatory
            spikes (general plasticity path only) and inhibitory spikes (only with S3 delays).
            Events beyond them are **not** processed but counted in
            ``PresentationOutput.dropped_events``; a run is exact when that count is 0 (see
            :func:`check_dropped` and ``docs/performance.md`` for the probabilities).
        k_in_chunk: the first this many entries of the per-step input list are processed every
            step (``None``: ``⌈k_in/3⌉``); the rest only in steps where it holds a spike (in any
            seed, under ``vmap``). Performance only: the results do not depend on it.
        input_capacity: candidate cells drawn at a time by the sparse sampler (``None``: half the
            worst case at ``intensity_start``); performance only, the sampler is exact for any value.
        input_sampler: ``"sparse"`` (exact thinning sampler) or ``"dense"`` (one uniform per
            input and step).
        plasticity: ``"auto"`` (deferred on_post updates when the rule supports them, see
            :class:`~snnjax_plugins.rules.LazyTrace`; else the general path), ``"lazy"`` (require
            them) or ``"reference"`` (the general path: the rule's ``prepare``/``update`` every step).
        lazy_block_ms: with deferred updates, every weight row is brought up to date at least this
            often (bounds the exponents; performance only).
    """

    n_input: int = 784
    n_exc: int = 30
    dt_ms: float = 0.1
    t_present_ms: float = 350.0
    t_rest_ms: float = 150.0
    exc: ConductanceLIF = ConductanceLIF(dt_ms=0.1, **THESIS_EXC)
    inh: ConductanceLIF = ConductanceLIF(dt_ms=0.1, **THESIS_INH)
    w_ei: float = 3.0
    w_ie: float = 0.1
    s2_delay_max_ms: float = 10.0
    s3_delay_max_ms: float = 5.0
    w_init: str = "uniform"
    w_init_low: float = 0.0
    w_init_high: float = 0.05
    norm_target: float | None = None
    max_rate_hz: float = 63.75
    intensity_start: float = 2.0
    intensity_step: float = 1.0
    min_spikes: int = 0
    max_repeats: int = 10
    reset_between_images: bool = False
    k_in: int = 16
    k_post: int = 4
    k_inh: int = 4
    k_in_chunk: int | None = None
    input_capacity: int | None = None
    input_sampler: str = "sparse"
    plasticity: str = "auto"
    lazy_block_ms: float = 25.0

    def __post_init__(self):
        if self.k_in_chunk is not None and not (isinstance(self.k_in_chunk, int) and self.k_in_chunk > 0):
            raise ConfigError(f"k_in_chunk must be a positive integer or None, got {self.k_in_chunk!r}")
        for name in ("n_input", "n_exc", "k_in", "k_post", "k_inh"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v > 0):
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if not self.dt_ms > 0:
            raise ConfigError(f"dt_ms must be a positive number of ms, got {self.dt_ms!r}")
        for name in ("t_present_ms", "t_rest_ms", "s2_delay_max_ms", "s3_delay_max_ms", "max_rate_hz"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be ≥ 0, got {getattr(self, name)!r}")
        for name in ("exc", "inh"):
            m = getattr(self, name)
            if abs(m.dt_ms - self.dt_ms) > 1e-12:
                raise ConfigError(f"the {name} neuron model has dt_ms={m.dt_ms} but the network dt_ms={self.dt_ms}")
        if self.w_init not in ("uniform", "dc15"):
            raise ConfigError(f"w_init must be 'uniform' or 'dc15', got {self.w_init!r}")
        if self.input_sampler not in ("sparse", "dense"):
            raise ConfigError(f"input_sampler must be 'sparse' or 'dense', got {self.input_sampler!r}")
        if self.plasticity not in ("auto", "lazy", "reference"):
            raise ConfigError(f"plasticity must be 'auto', 'lazy' or 'reference', got {self.plasticity!r}")
        if not self.lazy_block_ms > 0:
            raise ConfigError(f"lazy_block_ms must be > 0, got {self.lazy_block_ms!r}")
        if self.norm_target is not None and not self.norm_target > 0:
            raise ConfigError(f"norm_target must be > 0 or None, got {self.norm_target!r}")
        if self.min_spikes < 0 or self.max_repeats < 0:
            raise ConfigError("min_spikes and max_repeats must be ≥ 0")

    # derived static quantities
    @property
    def n_inh(self) -> int:
        return self.n_exc

    @property
    def steps_present(self) -> int:
        return int(self.t_present_ms / self.dt_ms + 0.5)

    @property
    def steps_total(self) -> int:
        return int((self.t_present_ms + self.t_rest_ms) / self.dt_ms + 0.5)

    @property
    def ring2(self) -> int:
        return delay_steps_static(self.s2_delay_max_ms, self.dt_ms) + 1

    @property
    def ring3(self) -> int:
        return delay_steps_static(self.s3_delay_max_ms, self.dt_ms) + 1

    @property
    def capacity(self) -> int:
        if self.input_capacity is not None:
            return int(self.input_capacity)
        p = min(1.0, self.max_rate_hz * self.dt_ms * 1e-3)
        return int(0.5 * self.steps_present * self.n_input * p) + 512

    @property
    def encoder(self) -> PoissonEncoder:
        return PoissonEncoder(max_rate_hz=self.max_rate_hz, dt_ms=self.dt_ms)


def delay_steps_static(d_ms: float, dt_ms: float) -> int:
    """Brian's spike-queue rounding, ``int(d/dt + 0.5)`` (half-up)."""
    return int(d_ms / dt_ms + 0.5)


def delay_steps(d_ms, dt_ms: float):
    """Array form of :func:`delay_steps_static` (int32)."""
    return jnp.floor(jnp.asarray(d_ms) / dt_ms + 0.5).astype(jnp.int32)


def thesis_config(**overrides) -> NetworkConfig:
    """Thesis (Antonov, Brian 2 notebook): 30 exc, dt 0.1 ms, Euler, vt-copy threshold, delayed S2/S3."""
    dt = overrides.get("dt_ms", 0.1)
    exc = overrides.pop("exc", ConductanceLIF(dt_ms=dt, **THESIS_EXC))
    inh = overrides.pop("inh", ConductanceLIF(dt_ms=dt, **THESIS_INH))
    base = dict(n_exc=30, dt_ms=dt, exc=exc, inh=inh, w_ei=3.0, w_ie=0.1, s2_delay_max_ms=10.0, s3_delay_max_ms=5.0,
                w_init="uniform", w_init_low=0.0, w_init_high=0.05, norm_target=None, min_spikes=0, k_in=24, k_inh=8, k_post=30)
    return NetworkConfig(**{**base, **overrides})


def dc15_config(n_exc: int = 100, **overrides) -> NetworkConfig:
    """Diehl & Cook 2015: N exc, dt 0.5 ms, exponential Euler, θ threshold, normalisation to 78, repeat if < 5 spikes."""
    dt = overrides.get("dt_ms", 0.5)
    exc = overrides.pop("exc", ConductanceLIF(dt_ms=dt, **DC15_EXC))
    inh = overrides.pop("inh", ConductanceLIF(dt_ms=dt, **DC15_INH))
    base = dict(n_exc=n_exc, dt_ms=dt, exc=exc, inh=inh, w_ei=10.4, w_ie=17.0, s2_delay_max_ms=0.0, s3_delay_max_ms=0.0,
                w_init="dc15", norm_target=78.0, min_spikes=5, max_repeats=10, intensity_start=2.0, intensity_step=1.0,
                k_in=48, k_post=4)
    return NetworkConfig(**{**base, **overrides})


@custom_vmap
def batch_any(flag):
    """A boolean scalar; under ``vmap``, the OR over the mapped axis (an unbatched scalar).

    Used as the predicate of a ``lax.cond`` whose taken branch is a no-op for the
    members of the batch that do not need it: the ``cond`` then stays a real branch
    under ``vmap`` (skipped when no member needs it) instead of becoming a ``select``
    that computes both branches for every member.
    """
    return flag


@batch_any.def_vmap
def _batch_any_vmap(axis_size, in_batched, flag):
    if in_batched[0]:
        flag = batch_any(jnp.any(flag))
    return flag, False


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


# ----------------------------------------------------------------------------------------------
# the step
# ----------------------------------------------------------------------------------------------


def _record(names, st: NetworkState):
    out = {}
    for name in names:
        if name == "exc_spikes" or name == "inh_spikes":
            continue
        pop, var = name.split("_", 1)
        out[name] = getattr(st.exc if pop == "exc" else st.inh, var)
    return out


def _delayed_synapses(cfg: NetworkConfig, st: NetworkState, exc, inh, se, si):
    """S2 (exc j → inh j) and S3 (inh i → exc j ≠ i) on_pre pathways; returns (exc, inh, buf2, buf3, dropped).

    S2 with delays: ``buf2`` holds the excitatory *spikes* of the last ``ring2``
    steps (row ``n % ring2`` = step ``n``); synapse ``j`` with delay ``d`` reads row
    ``(n − d) % ring2`` (a dense gather of ``n_exc`` elements; exact).
    S3 with delays: ``buf3`` holds pending conductance increments (row
    ``(n + d) % ring3`` receives a spike of step ``n`` with delay ``d``); the spiking
    inhibitory neurons of a step form a padded list of length ``k_inh`` (more are
    counted in ``dropped``), their rows are scatter-added, padded entries and the
    absent diagonal synapses land in a spare row ``ring3`` that is never read.
    """
    fdt = exc.v.dtype
    n = st.step
    w_ei = jnp.asarray(cfg.w_ei, fdt)
    buf2 = st.buf2
    if cfg.ring2 == 1:
        inh = inh._replace(ge=inh.ge + jnp.where(se, w_ei, 0))
    else:
        buf2 = lax.dynamic_update_index_in_dim(buf2, se.astype(fdt), n % cfg.ring2, 0)
        rows = (n - st.d2) % cfg.ring2
        arrived = buf2.at[rows, jnp.arange(cfg.n_exc)].get(mode="promise_in_bounds")
        inh = inh._replace(ge=inh.ge + w_ei * arrived)
    w_ie = jnp.asarray(cfg.w_ie, fdt)
    buf3 = st.buf3
    dropped = jnp.zeros((), jnp.int32)
    if cfg.ring3 == 1:
        cnt = jnp.sum(si).astype(fdt)
        exc = exc._replace(gi=exc.gi + w_ie * (cnt - si.astype(fdt)))
    else:
        dropped = jnp.maximum(jnp.sum(si, dtype=jnp.int32) - cfg.k_inh, 0)

        def spread(buf3):
            # padded list of spiking inhibitory neurons; pads and absent synapses add to the spare row `ring3`
            inh_idx = jnp.nonzero(si, size=cfg.k_inh, fill_value=cfg.n_inh)[0].astype(jnp.int32)
            valid = inh_idx < cfg.n_inh
            dd = jnp.take(st.d3, jnp.minimum(inh_idx, cfg.n_inh - 1), axis=0)
            rows = jnp.where(valid[:, None] & (dd >= 0), (n + dd) % cfg.ring3, cfg.ring3)
            cols = jnp.broadcast_to(jnp.arange(cfg.n_exc)[None, :], rows.shape)
            return buf3.at[rows, cols].add(w_ie, mode="promise_in_bounds")

        # most steps have no inhibitory spike (in any seed): skip the list and the scatter then
        buf3 = lax.cond(batch_any(jnp.any(si)), spread, lambda b3: b3, buf3)
        now = n % cfg.ring3
        exc = exc._replace(gi=exc.gi + buf3[now])
        buf3 = buf3.at[now].set(0)
    return exc, inh, buf2, buf3, dropped


def _integrate_and_threshold(cfg: NetworkConfig, st: NetworkState):
    """Brian's ``groups`` then ``thresholds`` slots for both populations: ``(exc, inh, se, si)``."""
    exc, nr_e = cfg.exc.integrate(st.exc)
    inh, nr_i = cfg.inh.integrate(st.inh)
    return exc, inh, cfg.exc.threshold(exc, nr_e), cfg.inh.threshold(inh, nr_i)


def _reset_and_record(cfg: NetworkConfig, exc, inh, se, si, rec, record):
    """Brian's ``resets`` slot for both populations; adds the spikes to the monitors asked for."""
    if "exc_spikes" in record:
        rec["exc_spikes"] = se
    if "inh_spikes" in record:
        rec["inh_spikes"] = si
    return cfg.exc.reset(exc, se), cfg.inh.reset(inh, si)


def _step_reference(cfg: NetworkConfig, rule: LearningRule, learn, gate, st: NetworkState, in_idx, record=()):
    """One time step with the general rule contract (``prepare``/``update`` every step).

    ``in_idx``: ``int32[k]`` spiking inputs padded with ``n_input`` (``k = 0``: no input).
    Returns ``(state, se, si, dropped[2] (post, inh), rec)``.
    """
    fdt = st.w.dtype
    n = st.step
    rec = _record(record, st)
    # ---- groups: state update;  thresholds
    exc, inh, se, si = _integrate_and_threshold(cfg, st)
    post_idx = jnp.nonzero(se, size=cfg.k_post, fill_value=cfg.n_exc)[0].astype(jnp.int32)
    post_drop = jnp.maximum(jnp.sum(se, dtype=jnp.int32) - cfg.k_post, 0)
    k = in_idx.shape[0]
    if k > 0:
        in_mask = jnp.zeros((cfg.n_input + 1,), bool).at[in_idx].set(True, mode="promise_in_bounds")[: cfg.n_input]
    else:
        in_mask = jnp.zeros((cfg.n_input,), bool)
    act = Activity(pre=in_mask, post=se, t_ms=n.astype(fdt) * cfg.dt_ms, dt_ms=cfg.dt_ms, gain=learn, gate=gate,
                   pre_idx=in_idx, post_idx=post_idx)
    w = rule.prepare(st.w, st.rule_state, act)
    # ---- synapses, on_pre pathways: S1 transmission (old weights), S2, S3
    if k > 0:
        valid = in_idx < cfg.n_input
        rows = jnp.take(w, jnp.minimum(in_idx, cfg.n_input - 1), axis=0)
        exc = exc._replace(ge=exc.ge + jnp.sum(jnp.where(valid[:, None], rows, 0), axis=0))
    exc, inh, buf2, buf3, inh_drop = _delayed_synapses(cfg, st, exc, inh, se, si)
    # ---- plasticity (on_pre then on_post inside the rule)
    w, rs = rule.update(w, st.rule_state, act)
    # ---- resets
    exc, inh = _reset_and_record(cfg, exc, inh, se, si, rec, record)
    new = NetworkState(w, st.d2, st.d3, exc, inh, rs, buf2, buf3, n + 1)
    return new, se, si, jnp.stack([post_drop, inh_drop]), rec


class _Block(NamedTuple):
    """Block-local bookkeeping of the deferred on_post updates (see :class:`~snnjax_plugins.rules.LazyTrace`).

    ``c[i]``: presynaptic trace of input ``i`` at its last flush, times ``e^{u_i·dt/τ}``;
    ``ul[i]``: block step ``u_i`` of that flush; ``P[j]``: Σ over this block's spikes of
    ``j`` of ``x_j·e^{−u·dt/τ}``; ``Ph[u]``: ``P`` at the start of block step ``u``;
    ``post``: the rule's postsynaptic traces (eager, per neuron). Arrays over inputs
    have one spare entry (index ``n_input``) that absorbs the padded list entries.
    With a chained lazy use-it-or-lose-it decay: ``ts[i]``, the time (ms) of input
    ``i``'s last spike, and ``kp``, the decay strength; otherwise both ``None``.
    """

    c: jnp.ndarray
    ul: jnp.ndarray
    P: jnp.ndarray
    Ph: jnp.ndarray
    post: tuple
    ts: jnp.ndarray | None = None
    kp: jnp.ndarray | None = None


def _step_lazy(cfg: NetworkConfig, lz: LazyTrace, rates, consts, st: NetworkState, b: _Block, u, in_idx, record=()):
    """One time step with deferred on_post updates. ``st.w`` has a spare zero row ``n_input``."""
    lr_pre, lr_post = rates
    eneg_u, epos_u = consts
    fdt = st.w.dtype
    rec = _record(record, st)
    lo, hi = jnp.asarray(lz.w_min, fdt), jnp.asarray(lz.w_max, fdt)
    Ph = lax.dynamic_update_index_in_dim(b.Ph, b.P, u, 0)
    exc, inh, se, si = _integrate_and_threshold(cfg, st)
    post = lz.decay_post(b.post, cfg.dt_ms)
    w, c, ul, ts = st.w, b.c, b.ul, b.ts
    k = in_idx.shape[0]
    if k > 0:
        # flush the rows of this step's spiking inputs (their pending on_post sums), then
        # transmit (Brian's on_pre reads w after every earlier on_post), then on_pre.
        # The first k_in_chunk entries are processed every step, the rest of the list only when
        # it holds a spike (in any seed under vmap), so the padding costs nothing.
        on_pre = lz.pre_row_delta(post, lr_pre)[None, :]
        t_ms = st.step.astype(fdt) * cfg.dt_ms  # the step's start time, as the general path's Activity.t_ms

        def chunk(ops, idx):
            w, c, ul, ts, drive = ops
            rows = w.at[idx].get(mode="promise_in_bounds")
            cc = c.at[idx].get(mode="promise_in_bounds")
            ph = Ph.at[ul.at[idx].get(mode="promise_in_bounds")].get(mode="promise_in_bounds")
            pend = lr_post[None, :] * cc[:, None] * (b.P[None, :] - ph)
            rows = jnp.where(pend != 0, jnp.clip(rows + pend, lo, hi), rows)
            if ts is not None:  # use-it-or-lose-it (lazy): the row's pending decay, before transmission
                f = lazy_factor(t_ms, ts.at[idx].get(mode="promise_in_bounds"), b.kp,
                                jnp.asarray(lz.decay_tau_ms, fdt))
                rows = rows * f[:, None]
                ts = ts.at[idx].set(t_ms, mode="promise_in_bounds")
            valid = idx < cfg.n_input
            # a sequential sum in list order (elementwise adds that XLA fuses; a reduce op here is
            # dispatched to a library kernel whose threading costs more than the sum itself)
            masked = jnp.where(valid[:, None], rows, 0)
            for r in range(masked.shape[0]):
                drive = drive + masked[r]
            rows = jnp.clip(rows + on_pre, lo, hi)
            w = w.at[idx].set(rows, mode="promise_in_bounds")
            c = c.at[idx].set(lz.pre_value(cc * eneg_u) * epos_u, mode="promise_in_bounds")
            ul = ul.at[idx].set(u, mode="promise_in_bounds")
            return w, c, ul, ts, drive

        kc = _in_chunk(cfg, k)
        ops = chunk((w, c, ul, ts, jnp.zeros_like(exc.ge)), in_idx[:kc])
        if kc < k:  # the rest of the list in one branch (one synchronisation point per step)
            rest = in_idx[kc:]
            ops = lax.cond(batch_any(jnp.any(rest < cfg.n_input)), chunk, lambda o, _: o, ops, rest)
        w, c, ul, ts, drive = ops
        exc = exc._replace(ge=exc.ge + drive)
    exc, inh, buf2, buf3, inh_drop = _delayed_synapses(cfg, st, exc, inh, se, si)
    # deferred on_post: accumulate, then this step's post spikes update the traces
    P = b.P + lz.post_weight(post, se) * eneg_u
    post = lz.post_spike(post, se)
    exc, inh = _reset_and_record(cfg, exc, inh, se, si, rec, record)
    new = st._replace(w=w, exc=exc, inh=inh, buf2=buf2, buf3=buf3, step=st.step + 1)
    return new, _Block(c, ul, P, Ph, post, ts, b.kp), se, si, jnp.stack([jnp.zeros((), jnp.int32), inh_drop]), rec


def _in_chunk(cfg: NetworkConfig, k: int) -> int:
    """Entries of the per-step input list processed every step (``cfg.k_in_chunk``, default ``⌈k/3⌉``)."""
    kc = cfg.k_in_chunk if cfg.k_in_chunk is not None else -(-k // 3)
    return max(1, min(k, kc))


def _block_len(cfg: NetworkConfig) -> int:
    return max(1, int(round(cfg.lazy_block_ms / cfg.dt_ms)))


def _phase_lazy(cfg, lz, rates, carry, table, n_steps, record):
    """``n_steps`` steps in blocks of ``_block_len`` steps (a flush of every row after each block)."""
    R = _block_len(cfg)
    dt = cfg.dt_ms
    tau = lz.tau_pre_ms

    def block(carry, xs, L):
        st, ce, ci, drop = carry
        fdt = st.w.dtype
        n_in = cfg.n_input
        apre, post = lz.split(st.rule_state)
        reg = lz.decay_state(st.rule_state)
        d1 = decay_factor(dt, tau, fdt)
        b = _Block(
            c=jnp.concatenate([apre * d1, jnp.zeros((1,), fdt)]),
            ul=jnp.zeros((n_in + 1,), jnp.int32),
            P=jnp.zeros((cfg.n_exc,), fdt),
            Ph=jnp.zeros((R, cfg.n_exc), fdt),
            post=post,
            ts=None if reg is None else jnp.concatenate([reg.t_s, jnp.zeros((1,), reg.t_s.dtype)]),
            kp=None if reg is None else jnp.asarray(reg.k_p, fdt),
        )
        us = jnp.arange(L, dtype=jnp.int32)
        eneg = jnp.asarray(np.exp(-np.arange(L) * dt / tau), fdt)
        epos = jnp.asarray(np.exp(np.arange(L) * dt / tau), fdt)

        def body(c2, x):
            st, b, ce, ci, drop = c2
            if xs is None:
                u, en, ep = x
                idx = jnp.zeros((0,), jnp.int32)
            else:
                u, en, ep, idx = x
            st, b, se, si, d, rec = _step_lazy(cfg, lz, rates, (en, ep), st, b, u, idx, record)
            return (st, b, ce + se, ci + si, drop + d), rec

        x = (us, eneg, epos) if xs is None else (us, eneg, epos, xs)
        (st, b, ce, ci, drop), rec = lax.scan(body, (st, b, ce, ci, drop), x)
        # flush every row; the presynaptic trace at the block's last step becomes the rule state again
        lo, hi = jnp.asarray(lz.w_min, fdt), jnp.asarray(lz.w_max, fdt)
        pend = rates[1][None, :] * b.c[:, None] * (b.P[None, :] - b.Ph.at[b.ul].get(mode="promise_in_bounds"))
        w = jnp.where(pend != 0, jnp.clip(st.w + pend, lo, hi), st.w)
        apre = b.c[:n_in] * eneg[L - 1]
        reg = None if reg is None else reg._replace(t_s=b.ts[:n_in])
        st = st._replace(w=w, rule_state=lz.join(apre, b.post, reg))
        return (st, ce, ci, drop), rec

    q, r = divmod(n_steps, R)
    recs = []
    if q:
        xs = None if table is None else table[: q * R].reshape(q, R, -1)
        carry, rec = lax.scan(lambda c, x: block(c, x, R), carry, xs, length=q)
        recs.append({k: v.reshape((q * R,) + v.shape[2:]) for k, v in rec.items()})
    if r:
        carry, rec = block(carry, None if table is None else table[q * R:], r)
        recs.append(rec)
    return carry, recs


def _phase_reference(cfg, rule, learn, gate, carry, table, n_steps, record):
    def body(c, idx):
        st, ce, ci, drop = c
        if idx is None:
            idx = jnp.zeros((0,), jnp.int32)
        st, se, si, d, rec = _step_reference(cfg, rule, learn, gate, st, idx, record)
        return (st, ce + se, ci + si, drop + d), rec

    with complete_event_lists():
        carry, rec = lax.scan(body, carry, table, length=n_steps)
    return carry, [rec]


def _input_drive(cfg: NetworkConfig, w, table):
    """S1 conductance increments of every input step, ``[T, n_exc]``, with plasticity off.

    The spikes of the per-step lists ``table`` (``int32[T, k_in]``) are compacted into one
    event list of length ``cfg.capacity`` (more are counted in the returned ``dropped``),
    their weight rows gathered once and summed per step: work proportional to the
    input spikes instead of ``T·k_in``. The sums equal the per-step transmission of the
    plastic path up to the order of float additions.
    """
    fdt = w.dtype
    T, k = table.shape
    flat = table.reshape(-1)
    is_spike = flat < cfg.n_input
    n_events = jnp.sum(is_spike, dtype=jnp.int32)
    pos = jnp.nonzero(is_spike, size=cfg.capacity, fill_value=T * k)[0]
    flat = jnp.concatenate([flat, jnp.full((1,), cfg.n_input, flat.dtype)])
    inputs = flat[pos]
    w_pad = jnp.concatenate([w, jnp.zeros((1, cfg.n_exc), fdt)])
    rows = jnp.take(w_pad, inputs, axis=0)
    drive = jax.ops.segment_sum(rows, pos // k, num_segments=T + 1)[:T]
    return drive, jnp.maximum(n_events - cfg.capacity, 0)


def _phase_inference(cfg: NetworkConfig, carry, drive, n_steps: int, record):
    """``n_steps`` steps without plasticity; ``drive``: ``[n_steps, n_exc]`` S1 input or ``None`` (rest)."""

    def body(c, d):
        st, ce, ci, drop = c
        rec = _record(record, st)
        exc, inh, se, si = _integrate_and_threshold(cfg, st)
        if d is not None:
            exc = exc._replace(ge=exc.ge + d)
        exc, inh, buf2, buf3, inh_drop = _delayed_synapses(cfg, st, exc, inh, se, si)
        exc, inh = _reset_and_record(cfg, exc, inh, se, si, rec, record)
        st = st._replace(exc=exc, inh=inh, buf2=buf2, buf3=buf3, step=st.step + 1)
        return (st, ce + se, ci + si, drop.at[1].add(inh_drop)), rec

    carry, rec = lax.scan(body, carry, drive, length=n_steps)
    return carry, [rec]


def _use_lazy(cfg: NetworkConfig, rule: LearningRule) -> LazyTrace | None:
    if cfg.plasticity == "reference":
        return None
    lz = lazy_form(rule)
    if lz is None and cfg.plasticity == "lazy":
        raise ConfigError("plasticity='lazy' needs a built-in hard-bounded trace rule (stdp, all-ltd, segment-supervised "
                          "with trace rules, stdp-dc15) without prepare hooks, alone or chained with a lazy "
                          "use-it-or-lose-it; use plasticity='auto' or 'reference'")
    return lz


def _onset(st: NetworkState, cfg: NetworkConfig, fixed_v2_mv=None) -> NetworkState:
    exc, inh = st.exc, st.inh
    if cfg.reset_between_images:
        fresh_e = cfg.exc.init(cfg.n_exc, st.w.dtype)
        fresh_i = cfg.inh.init(cfg.n_inh, st.w.dtype)
        # adaptive thresholds persist (they are learned), everything else restarts
        exc = fresh_e._replace(vt=exc.vt, theta=exc.theta)
        inh = fresh_i
    if cfg.exc.threshold_form == "vt-copy":
        exc = cfg.exc.onset(exc)
        if fixed_v2_mv is not None:  # test phase of the thesis: v2 fixed, vt keeps evolving
            exc = exc._replace(v2=jnp.full_like(exc.v2, fixed_v2_mv))
    w = st.w
    if cfg.norm_target is not None:
        w = w * jnp.asarray(cfg.norm_target, w.dtype) / jnp.sum(w, axis=0, keepdims=True)
    return st._replace(w=w, exc=exc, inh=inh)


def _gate_or_ones(gate, cfg, fdt):
    return jnp.ones((cfg.n_exc,), fdt) if gate is None else jnp.asarray(gate, fdt)


def _run_phases(cfg, rule, learn, gate, st, table, record, plastic=True):
    """Input phase (``table``: ``int32[T, k_in]`` padded index lists) then the silent rest.

    Returns ``(state, exc_counts, inh_counts, dropped[2] (post, inh), recs)``; with
    ``plastic=False`` the first entry of ``dropped`` counts input events beyond
    ``cfg.capacity`` instead.
    """
    ce = jnp.zeros((cfg.n_exc,), jnp.int32)
    ci = jnp.zeros((cfg.n_inh,), jnp.int32)
    drop = jnp.zeros((2,), jnp.int32)
    n_in_steps = table.shape[0]
    n_rest = cfg.steps_total - n_in_steps
    lz = _use_lazy(cfg, rule) if plastic else None
    if not plastic:
        drive, ev_drop = _input_drive(cfg, st.w, table)
        carry = (st, ce, ci, drop.at[0].set(ev_drop))
        carry, r1 = _phase_inference(cfg, carry, drive, n_in_steps, record)
        carry, r2 = _phase_inference(cfg, carry, None, n_rest, record)
        st, ce, ci, drop = carry
    elif lz is None:
        carry = (st, ce, ci, drop)
        carry, r1 = _phase_reference(cfg, rule, learn, gate, carry, table, n_in_steps, record)
        carry, r2 = _phase_reference(cfg, rule, learn, gate, carry, None, n_rest, record)
        st, ce, ci, drop = carry
    else:
        fdt = st.w.dtype
        rates = lz.rates(learn, gate, cfg.n_exc, fdt)
        w_pad = jnp.concatenate([st.w, jnp.zeros((1, cfg.n_exc), fdt)])
        carry = (st._replace(w=w_pad), ce, ci, drop)
        carry, r1 = _phase_lazy(cfg, lz, rates, carry, table, n_in_steps, record)
        carry, r2 = _phase_lazy(cfg, lz, rates, carry, None, n_rest, record)
        st, ce, ci, drop = carry
        st = st._replace(w=st.w[: cfg.n_input])
    recs = None
    if record:
        parts = [r for r in r1 + r2 if r]
        recs = {k: jnp.concatenate([p[k] for p in parts]) for k in parts[0]}
    return st, ce, ci, drop, recs


def _input_table(cfg: NetworkConfig, key, p) -> InputTable:
    if cfg.input_sampler == "sparse":
        return sample_table(key, p, cfg.steps_present, cfg.k_in, cfg.capacity)
    raster = jax.random.uniform(key, (cfg.steps_present, cfg.n_input), dtype=p.dtype) < p[None, :]
    return raster_table(raster, cfg.k_in)


def _check_record(record):
    record = tuple(record)
    for r in record:
        if r not in RECORDABLE:
            raise ConfigError(f"cannot record {r!r}; choose from {', '.join(RECORDABLE)}")
    return record


def present_raster(state: NetworkState, raster, cfg: NetworkConfig, rule: LearningRule, *, learn=1.0, gate=None, record=()):
    """Present a given input raster ``bool[T, n_input]`` (``T ≤`` steps per image; later steps silent).

    Applies the image onset (v2 copy, normalisation), then runs ``cfg.steps_total``
    steps. ``learn`` is the learning gain (0 = test), ``gate`` the per-neuron
    modulation (e.g. :func:`snnjax_plugins.rules.segment_gate`). Returns
    ``(state, PresentationOutput)``.
    """
    record = _check_record(record)
    raster = jnp.asarray(raster, bool)
    if raster.ndim != 2 or raster.shape[1] != cfg.n_input or raster.shape[0] > cfg.steps_total:
        raise InputError(f"raster must be bool[T ≤ {cfg.steps_total}, {cfg.n_input}], got shape {raster.shape}")
    fdt = state.w.dtype
    gate = _gate_or_ones(gate, cfg, fdt)
    learn = jnp.asarray(learn, fdt)
    st = _onset(state, cfg)
    table = raster_table(raster, cfg.k_in)
    st, ce, ci, drop, recs = _run_phases(cfg, rule, learn, gate, st, table.idx, record)
    dropped = jnp.concatenate([table.dropped[None], drop])
    return st, PresentationOutput(ce, ci, jnp.ones((), jnp.int32), jnp.zeros((), jnp.int32), recs, dropped)


def present(state: NetworkState, image, key, cfg: NetworkConfig, rule: LearningRule, *, learn=1.0, gate=None, record=(),
            fixed_v2_mv=None, plastic: bool = True):
    """Present one image (``[n_input]`` pixels 0–255) with Poisson input drawn from ``key``.

    With ``cfg.min_spikes > 0`` the D&C rule applies: while fewer than
    ``min_spikes`` excitatory spikes occur, the intensity rises by
    ``intensity_step`` and the image is shown again (a bounded ``lax.while_loop``).
    ``fixed_v2_mv``: with the ``vt-copy`` threshold, use this fixed threshold for
    the image instead of copying ``vt`` (the thesis' test phase: −52 mV).
    ``plastic=False`` (static): inference only — the rule is not run (weights and the
    rule's traces stay as they are), and the input's S1 drive is computed once per
    image from its spikes (:func:`_input_drive`), so the time loop only integrates the
    neurons: the same spikes as ``learn=0`` up to the order of float additions, and
    much faster. ``dropped[0]`` then counts input spikes beyond ``cfg.capacity``.
    """
    record = _check_record(record)
    check_image(image, cfg.n_input)
    fdt = state.w.dtype
    image = jnp.asarray(image).reshape(-1).astype(fdt)
    gate = _gate_or_ones(gate, cfg, fdt)
    learn = jnp.asarray(learn, fdt)
    enc = cfg.encoder
    zero = jnp.zeros((), jnp.int32)

    def once(st, k, intensity):
        st = _onset(st, cfg, fixed_v2_mv)
        p = enc.probabilities(image, intensity / cfg.intensity_start).astype(fdt)
        table = _input_table(cfg, k, p)
        st, ce, ci, drop, recs = _run_phases(cfg, rule, learn, gate, st, table.idx, record, plastic)
        return st, ce, ci, jnp.concatenate([table.dropped[None], drop]), recs

    if cfg.min_spikes == 0:
        st, ce, ci, dropped, recs = once(state, key, jnp.asarray(cfg.intensity_start, fdt))
        return st, PresentationOutput(ce, ci, jnp.ones((), jnp.int32), zero, recs, dropped)
    if record:
        raise ConfigError("monitors cannot be recorded with the repeat rule (min_spikes > 0); set min_spikes=0")

    def cond(c):
        _, _, _, ce, _, _, reps = c
        return (reps == 0) | ((jnp.sum(ce) < cfg.min_spikes) & (reps <= cfg.max_repeats))

    def body(c):
        st, k, intensity, _, _, dropped, reps = c
        k, sub = jax.random.split(k)
        intensity = jnp.where(reps == 0, intensity, intensity + cfg.intensity_step)
        st, ce, ci, d, _ = once(st, sub, intensity)
        return st, k, intensity, ce, ci, dropped + d, reps + 1

    zeros_e = jnp.zeros((cfg.n_exc,), jnp.int32)
    init = (state, key, jnp.asarray(cfg.intensity_start, fdt), zeros_e, zeros_e, jnp.zeros((3,), jnp.int32), zero)
    st, _, _, ce, ci, dropped, reps = lax.while_loop(cond, body, init)
    return st, PresentationOutput(ce, ci, reps, zero, None, dropped)


def present_many(state: NetworkState, images, key, cfg: NetworkConfig, rule: LearningRule, *, learn=1.0, gates=None,
                 fixed_v2_mv=None, plastic: bool = True):
    """Present ``images`` (``[n, n_input]``) one after another (a ``lax.scan``); returns (state, outputs stacked).

    The keyword arguments are those of :func:`present`.
    """
    if not isinstance(images, jax.core.Tracer):
        for img in images:
            check_image(img, cfg.n_input)
    n = images.shape[0]
    fdt = state.w.dtype
    if gates is None:
        gates = jnp.ones((n, cfg.n_exc), fdt)
    keys = jax.random.split(key, n)

    def body(st, x):
        img, k, g = x
        st, out = present(st, img, k, cfg, rule, learn=learn, gate=g, fixed_v2_mv=fixed_v2_mv, plastic=plastic)
        return st, out

    return lax.scan(body, state, (jnp.asarray(images), keys, jnp.asarray(gates, fdt)))


__all__ = [
    "FAR",
    "NetworkConfig",
    "NetworkState",
    "check_dropped",
    "PresentationOutput",
    "dc15_config",
    "delay_steps",
    "init_network",
    "present",
    "present_many",
    "present_raster",
    "thesis_config",
    "with_delays",
]
