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

Everything is event-driven: the spiking inputs of a step are a padded index
list of length ``k_in``; S1 transmission and the rule's on_pre updates touch
only their rows; the rule's on_post updates touch only the columns of spiking
excitatory neurons (padded list of length ``k_post``). Steps with more events
than the lists hold are still exact (a ``lax.while_loop`` that normally runs zero
times handles the rest).

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
from jax import lax

from snnjax.errors import ConfigError, InputError
from snnjax.plasticity import Activity, LearningRule

from .encoders import FAR, PoissonEncoder, check_image, sample_candidates
from .neurons import DC15_EXC, DC15_INH, THESIS_EXC, THESIS_INH, CondLIFState, ConductanceLIF
from .rules import for_each_event

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
        k_in, k_post, k_inh: lengths of the padded per-step event lists (performance only).
        input_capacity: candidate cells drawn per presentation by the sparse sampler
            (``None``: half the worst case at ``intensity_start``); performance only, the
            sampler is exact for any value.
        input_sampler: ``"sparse"`` (exact thinning sampler) or ``"dense"`` (one uniform per
            input and step).
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
    input_capacity: int | None = None
    input_sampler: str = "sparse"

    def __post_init__(self):
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
                w_init="uniform", w_init_low=0.0, w_init_high=0.05, norm_target=None, min_spikes=0)
    return NetworkConfig(**{**base, **overrides})


def dc15_config(n_exc: int = 100, **overrides) -> NetworkConfig:
    """Diehl & Cook 2015: N exc, dt 0.5 ms, exponential Euler, θ threshold, normalisation to 78, repeat if < 5 spikes."""
    dt = overrides.get("dt_ms", 0.5)
    exc = overrides.pop("exc", ConductanceLIF(dt_ms=dt, **DC15_EXC))
    inh = overrides.pop("inh", ConductanceLIF(dt_ms=dt, **DC15_INH))
    base = dict(n_exc=n_exc, dt_ms=dt, exc=exc, inh=inh, w_ei=10.4, w_ie=17.0, s2_delay_max_ms=0.0, s3_delay_max_ms=0.0,
                w_init="dc15", norm_target=78.0, min_spikes=5, max_repeats=10, intensity_start=2.0, intensity_step=1.0,
                k_in=16, k_post=4)
    return NetworkConfig(**{**base, **overrides})


class NetworkState(NamedTuple):
    """Everything that evolves (a pytree; one per seed under ``vmap``).

    Attributes:
        w: ``[n_input, n_exc]`` S1 weights.
        d2: ``int32[n_exc]`` S2 delays in steps.
        d3: ``int32[n_inh, n_exc]`` S3 delays in steps (−1 on the diagonal: no synapse).
        exc, inh: neuron states.
        rule_state: the learning rule's state.
        buf2: ``[ring2, n_inh]`` pending S2 conductance increments (ring buffer).
        buf3: ``[ring3, n_exc]`` pending S3 conductance increments (ring buffer).
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
        dense_steps: steps whose input had to be drawn densely (sampler capacity exceeded; diagnostics).
        monitors: dict of recorded ``[T, n]`` arrays (state at the start of each step), or ``None``.
    """

    exc_counts: jnp.ndarray
    inh_counts: jnp.ndarray
    n_presentations: jnp.ndarray
    dense_steps: jnp.ndarray
    monitors: dict | None = None


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
    d3 = delay_steps(jax.random.uniform(k_3, (cfg.n_inh, cfg.n_exc), fdt, 0.0, cfg.s3_delay_max_ms), cfg.dt_ms)
    d2 = jnp.minimum(d2, cfg.ring2 - 1)
    d3 = jnp.where(jnp.eye(cfg.n_exc, dtype=bool), -1, jnp.minimum(d3, cfg.ring3 - 1))
    return NetworkState(
        w=w,
        d2=d2,
        d3=d3,
        exc=cfg.exc.init(cfg.n_exc, fdt),
        inh=cfg.inh.init(cfg.n_inh, fdt),
        rule_state=rule.init(w),
        buf2=jnp.zeros((cfg.ring2, cfg.n_inh), fdt),
        buf3=jnp.zeros((cfg.ring3, cfg.n_exc), fdt),
        step=jnp.zeros((), jnp.int32),
    )


def with_delays(state: NetworkState, cfg: NetworkConfig, d2_steps, d3_steps) -> NetworkState:
    """Replace the delays (in steps; −1 or any negative value on S3's diagonal)."""
    d2 = jnp.asarray(d2_steps, jnp.int32)
    d3 = jnp.asarray(d3_steps, jnp.int32)
    if int(jnp.max(d2)) >= cfg.ring2 or int(jnp.max(d3)) >= cfg.ring3:
        raise ConfigError("delays exceed the configured maxima (s2_delay_max_ms / s3_delay_max_ms)")
    d3 = jnp.where(jnp.eye(cfg.n_exc, dtype=bool), -1, d3)
    return state._replace(d2=d2, d3=d3)


# ----------------------------------------------------------------------------------------------
# the step
# ----------------------------------------------------------------------------------------------


def _record(names, st: NetworkState, se=None, si=None):
    out = {}
    for name in names:
        if name == "exc_spikes" or name == "inh_spikes":
            continue
        pop, var = name.split("_", 1)
        out[name] = getattr(st.exc if pop == "exc" else st.inh, var)
    return out


def _step(cfg: NetworkConfig, rule: LearningRule, learn, gate, st: NetworkState, in_mask, in_idx, record=()):
    """One time step of the whole network. ``in_mask``/``in_idx``: this step's input spikes."""
    fdt = st.w.dtype
    n = st.step
    rec = _record(record, st)
    # ---- groups: state update
    exc, nr_e = cfg.exc.integrate(st.exc)
    inh, nr_i = cfg.inh.integrate(st.inh)
    # ---- thresholds
    se = cfg.exc.threshold(exc, nr_e)
    si = cfg.inh.threshold(inh, nr_i)
    post_idx = jnp.nonzero(se, size=cfg.k_post, fill_value=cfg.n_exc)[0].astype(jnp.int32)
    act = Activity(pre=in_mask, post=se, t_ms=n.astype(fdt) * cfg.dt_ms, dt_ms=cfg.dt_ms, gain=learn, gate=gate,
                   pre_idx=in_idx, post_idx=post_idx)
    w = rule.prepare(st.w, st.rule_state, act)
    # ---- synapses, on_pre pathways: S1 transmission (old weights) ...
    if in_idx.shape[0] > 0:

        def transmit(idx, dge):
            return dge + jnp.sum(w.at[idx].get(mode="fill", fill_value=0), axis=0)

        dge = for_each_event(in_mask, in_idx, transmit, jnp.zeros((cfg.n_exc,), fdt))
        exc = exc._replace(ge=exc.ge + dge)
    # ... S2: exc j -> inh j
    w_ei = jnp.asarray(cfg.w_ei, fdt)
    buf2 = st.buf2
    if cfg.ring2 == 1:
        inh = inh._replace(ge=inh.ge + jnp.where(se, w_ei, 0))
    else:
        slot = (n + st.d2) % cfg.ring2
        buf2 = buf2.at[slot, jnp.arange(cfg.n_exc)].add(jnp.where(se, w_ei, 0))
        now = n % cfg.ring2
        inh = inh._replace(ge=inh.ge + buf2[now])
        buf2 = buf2.at[now].set(0)
    # ... S3: inh i -> exc j != i
    w_ie = jnp.asarray(cfg.w_ie, fdt)
    buf3 = st.buf3
    if cfg.ring3 == 1:
        cnt = jnp.sum(si).astype(fdt)
        exc = exc._replace(gi=exc.gi + w_ie * (cnt - si.astype(fdt)))
    else:
        inh_idx = jnp.nonzero(si, size=cfg.k_inh, fill_value=cfg.n_inh)[0].astype(jnp.int32)
        cols = jnp.arange(cfg.n_exc)[None, :]

        def deliver(idx, b):
            dd = st.d3.at[idx].get(mode="fill", fill_value=-1)
            rows = jnp.where(dd >= 0, (n + dd) % cfg.ring3, cfg.ring3)
            return b.at[rows, jnp.broadcast_to(cols, rows.shape)].add(w_ie, mode="drop")

        buf3 = for_each_event(si, inh_idx, deliver, buf3)
        now = n % cfg.ring3
        exc = exc._replace(gi=exc.gi + buf3[now])
        buf3 = buf3.at[now].set(0)
    # ---- plasticity (on_pre then on_post inside the rule)
    w, rs = rule.update(w, st.rule_state, act)
    # ---- resets
    exc = cfg.exc.reset(exc, se)
    inh = cfg.inh.reset(inh, si)
    if "exc_spikes" in record:
        rec["exc_spikes"] = se
    if "inh_spikes" in record:
        rec["inh_spikes"] = si
    new = NetworkState(w, st.d2, st.d3, exc, inh, rs, buf2, buf3, n + 1)
    return new, se, si, rec


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


def _run_phases(cfg, rule, learn, gate, st, input_scan, record):
    """Input phase (given scan body over xs) then the silent rest phase; returns (state, ce, ci, dense, recs)."""
    ce = jnp.zeros((cfg.n_exc,), jnp.int32)
    ci = jnp.zeros((cfg.n_inh,), jnp.int32)
    (st, ce, ci, dense), rec1 = input_scan(st, ce, ci)
    empty_idx = jnp.zeros((0,), jnp.int32)
    no_input = jnp.zeros((cfg.n_input,), bool)
    n_rest = cfg.steps_total - input_scan.n_steps

    def body(c, _):
        st, ce, ci = c
        st, se, si, rec = _step(cfg, rule, learn, gate, st, no_input, empty_idx, record)
        return (st, ce + se, ci + si), rec

    (st, ce, ci), rec2 = lax.scan(body, (st, ce, ci), None, length=n_rest)
    recs = None
    if record:
        recs = {k: jnp.concatenate([rec1[k], rec2[k]]) for k in rec1}
    return st, ce, ci, dense, recs


class _RasterScan:
    def __init__(self, cfg, rule, learn, gate, raster, record):
        self.cfg, self.rule, self.learn, self.gate, self.raster, self.record = cfg, rule, learn, gate, raster, record
        self.n_steps = raster.shape[0]

    def __call__(self, st, ce, ci):
        cfg = self.cfg

        def body(c, row):
            st, ce, ci = c
            idx = jnp.nonzero(row, size=cfg.k_in, fill_value=cfg.n_input)[0].astype(jnp.int32)
            st, se, si, rec = _step(cfg, self.rule, self.learn, self.gate, st, row, idx, self.record)
            return (st, ce + se, ci + si), rec

        (st, ce, ci), rec = lax.scan(body, (st, ce, ci), self.raster)
        return (st, ce, ci, jnp.zeros((), jnp.int32)), rec


class _SparseScan:
    """Input phase driven by :func:`sample_candidates` (exact Bernoulli input)."""

    def __init__(self, cfg, rule, learn, gate, key, p, record):
        self.cfg, self.rule, self.learn, self.gate, self.key, self.p, self.record = cfg, rule, learn, gate, key, p, record
        self.n_steps = cfg.steps_present

    def __call__(self, st, ce, ci):
        cfg = self.cfg
        k_cand, k_dense = jax.random.split(self.key)
        cand = sample_candidates(k_cand, self.p, self.n_steps, cfg.capacity, cfg.k_in)
        n_a = cand.n_active
        cols = jnp.arange(cfg.n_input, dtype=jnp.int32)
        k = cfg.k_in

        def body(c, t):
            st, ce, ci, ptr, dense = c
            start = t * n_a
            end = start + n_a
            wpos = lax.dynamic_slice(cand.pos, (ptr,), (k,))
            widx = lax.dynamic_slice(cand.idx, (ptr,), (k,))
            in_step = wpos < end
            idx = jnp.where(in_step, widx, cfg.n_input)
            mask = jnp.zeros((cfg.n_input,), bool).at[idx].set(True, mode="drop")
            # cells of this step not decided by the window: after a full window, or past the sampled range
            decided = jnp.where(in_step[k - 1], wpos[k - 1], end - 1)
            decided = jnp.minimum(decided, cand.known_until)
            need_dense = decided < end - 1

            def dense_body(carry):
                mask_, _ = carry
                u = jax.random.uniform(jax.random.fold_in(k_dense, t), (cfg.n_input,), dtype=self.p.dtype)
                cell = start + cols
                spike = (cell > decided) & (cols < n_a) & (u < cand.p_sorted)
                extra = jnp.zeros((cfg.n_input,), bool).at[jnp.where(spike, cand.order, cfg.n_input)].set(True, mode="drop")
                return mask_ | extra, jnp.zeros((), bool)

            mask, _ = lax.while_loop(lambda c: c[1], dense_body, (mask, need_dense))
            # skip every candidate of this step
            ptr = jnp.searchsorted(cand.pos, end, side="left").astype(jnp.int32)
            st, se, si, rec = _step(cfg, self.rule, self.learn, self.gate, st, mask, idx.astype(jnp.int32), self.record)
            return (st, ce + se, ci + si, ptr, dense + need_dense), rec

        init = (st, ce, ci, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
        (st, ce, ci, _, dense), rec = lax.scan(body, init, jnp.arange(self.n_steps, dtype=jnp.int32))
        return (st, ce, ci, dense), rec


class _DenseScan(_RasterScan):
    def __init__(self, cfg, rule, learn, gate, key, p, record):
        raster = jax.random.uniform(key, (cfg.steps_present, cfg.n_input), dtype=p.dtype) < p[None, :]
        super().__init__(cfg, rule, learn, gate, raster, record)


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
    scan = _RasterScan(cfg, rule, learn, gate, raster, record)
    st, ce, ci, dense, recs = _run_phases(cfg, rule, learn, gate, st, scan, record)
    return st, PresentationOutput(ce, ci, jnp.ones((), jnp.int32), dense, recs)


def present(state: NetworkState, image, key, cfg: NetworkConfig, rule: LearningRule, *, learn=1.0, gate=None, record=(),
            fixed_v2_mv=None):
    """Present one image (``[n_input]`` pixels 0–255) with Poisson input drawn from ``key``.

    With ``cfg.min_spikes > 0`` the D&C rule applies: while fewer than
    ``min_spikes`` excitatory spikes occur, the intensity rises by
    ``intensity_step`` and the image is shown again (a bounded ``lax.while_loop``).
    ``fixed_v2_mv``: with the ``vt-copy`` threshold, use this fixed threshold for
    the image instead of copying ``vt`` (the thesis' test phase: −52 mV).
    """
    record = _check_record(record)
    check_image(image, cfg.n_input)
    fdt = state.w.dtype
    image = jnp.asarray(image).reshape(-1).astype(fdt)
    gate = _gate_or_ones(gate, cfg, fdt)
    learn = jnp.asarray(learn, fdt)
    enc = cfg.encoder
    Scan = _SparseScan if cfg.input_sampler == "sparse" else _DenseScan

    def once(st, k, intensity):
        st = _onset(st, cfg, fixed_v2_mv)
        p = enc.probabilities(image, intensity / cfg.intensity_start).astype(fdt)
        scan = Scan(cfg, rule, learn, gate, k, p, record)
        return _run_phases(cfg, rule, learn, gate, st, scan, record)

    if cfg.min_spikes == 0:
        st, ce, ci, dense, recs = once(state, key, jnp.asarray(cfg.intensity_start, fdt))
        return st, PresentationOutput(ce, ci, jnp.ones((), jnp.int32), dense, recs)
    if record:
        raise ConfigError("monitors cannot be recorded with the repeat rule (min_spikes > 0); set min_spikes=0")

    def cond(c):
        _, _, _, ce, _, _, reps = c
        return (reps == 0) | ((jnp.sum(ce) < cfg.min_spikes) & (reps <= cfg.max_repeats))

    def body(c):
        st, k, intensity, _, _, dense, reps = c
        k, sub = jax.random.split(k)
        intensity = jnp.where(reps == 0, intensity, intensity + cfg.intensity_step)
        st, ce, ci, d, _ = once(st, sub, intensity)
        return st, k, intensity, ce, ci, dense + d, reps + 1

    zeros_e = jnp.zeros((cfg.n_exc,), jnp.int32)
    init = (state, key, jnp.asarray(cfg.intensity_start, fdt), zeros_e, zeros_e, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
    st, _, _, ce, ci, dense, reps = lax.while_loop(cond, body, init)
    return st, PresentationOutput(ce, ci, reps, dense, None)


def present_many(state: NetworkState, images, key, cfg: NetworkConfig, rule: LearningRule, *, learn=1.0, gates=None,
                 fixed_v2_mv=None):
    """Present ``images`` (``[n, n_input]``) one after another (a ``lax.scan``); returns (state, outputs stacked)."""
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
        st, out = present(st, img, k, cfg, rule, learn=learn, gate=g, fixed_v2_mv=fixed_v2_mv)
        return st, out

    return lax.scan(body, state, (jnp.asarray(images), keys, jnp.asarray(gates, fdt)))


__all__ = [
    "FAR",
    "NetworkConfig",
    "NetworkState",
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
