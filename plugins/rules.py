r"""Built-in learning rules of the Diehl & Cook family: STDP, All-LTD, D&C 2015 STDP, segment-supervised.

Every factory returns a :class:`snnjax.plasticity.LearningRule` acting on a dense
weight matrix ``W[pre, post]``. Traces are kept **per neuron** (a synapse's
presynaptic trace only depends on its presynaptic neuron's spikes, so it is the
same for all of that neuron's synapses) and decay **exactly**,
``x ← x·exp(−dt/τ)`` once per step, which equals Brian 2's lazily updated
event-driven traces (``x·exp(−(t − lastupdate)/τ)``) up to rounding.

Order within a step follows Brian 2: every ``on_pre`` pathway before every
``on_post`` pathway, each statement clipped at once, so a pre and a post spike
in the same step count as pre-before-post (Δt = 0 potentiates under STDP).

Event-driven updates: when ``activity.pre_idx`` / ``activity.post_idx`` are given
(padded index lists, pad value = the population size), only the rows / columns
of spiking neurons are read and written. Spikes in ``activity.pre`` /
``activity.post`` beyond what the index list holds are processed exactly in
further chunks by a ``lax.while_loop`` that runs zero times in the usual case.
Without index lists, the rules use dense masked updates (same results).

Fast form: the hard-bounded trace rules (``stdp``, ``all_ltd``, the merged
``segment_supervised``, ``stdp_dc15``) declare their deferred form in the
rule's ``fast`` field (:class:`PairTraceForm`, :class:`DC15Form`, subclasses of
:class:`snnjax.deferred.DeferredTrace`); the network's fast path reads only that.

``activity.gain`` scales every learning rate (0 = learning off: weights kept,
traces still advance, as in the thesis' test phase with ``lr1 = lr2 = 0``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp

from snnjax.deferred import DeferredTrace, fast_form
from snnjax.errors import ConfigError
from snnjax.hookspecs import hookimpl
from snnjax.plasticity import Activity, LearningRule, for_each_event

# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def decay_factor(dt_ms, tau_ms: float, dtype):
    """``exp(−dt/τ)`` in ``dtype`` (computed in double precision when ``dt`` is a Python number)."""
    if isinstance(dt_ms, (int, float)):
        return jnp.asarray(math.exp(-dt_ms / tau_ms), dtype)
    return jnp.exp(-jnp.asarray(dt_ms, dtype) / jnp.asarray(tau_ms, dtype))


def _gate(act: Activity, n_post: int, dtype):
    if act.gate is None:
        return jnp.ones((n_post,), dtype)
    return jnp.asarray(act.gate, dtype)


def segment_gate(label, n_post: int, n_classes: int, dtype=None):
    """``float[n_post]``: 1 on the segment of ``label`` (neurons ``label·s … label·s + s − 1``), 0 elsewhere."""
    if n_classes <= 0 or n_post % n_classes:
        raise ConfigError(
            f"segment-supervised: {n_post} excitatory neurons cannot be split into {n_classes} equal segments "
            f"(one per class); choose n_exc as a multiple of n_classes."
        )
    size = n_post // n_classes
    dtype = jnp.zeros((), float).dtype if dtype is None else dtype
    return (jnp.arange(n_post) // size == jnp.asarray(label)).astype(dtype)


# ----------------------------------------------------------------------------------------------
# pair-based trace STDP (thesis form) and All-LTD
# ----------------------------------------------------------------------------------------------


class TraceState(NamedTuple):
    """Per-neuron traces: ``apre[n_pre]``, ``apost[n_post]`` (dimensionless)."""

    apre: jnp.ndarray
    apost: jnp.ndarray


@dataclasses.dataclass(frozen=True)
class TraceSTDPParams:
    """Parameters of the pair-based trace rule (thesis constants by default).

    on_pre:  ``Apre += a_pre``;   ``w ← bound(w + lr1·Apost)``
    on_post: ``Apost += a_post``; ``w ← bound(w + lr2·Apre)``

    ``pairing="nearest"`` sets the trace to its increment instead of adding it.
    ``bounds="hard"`` clips to ``[w_min, w_max]``; ``"soft"`` scales a potentiation
    by ``(w_max − w)/(w_max − w_min)`` and a depression by ``(w − w_min)/(w_max − w_min)``
    (then clips).
    """

    tau_pre_ms: float = 20.0
    tau_post_ms: float = 20.0
    a_pre: float = 5e-4
    a_post: float = -5.25e-4
    w_min: float = 0.0
    w_max: float = 0.05
    lr1: float = 1.0
    lr2: float = 1.0
    pairing: str = "all-to-all"
    bounds: str = "hard"

    def __post_init__(self):
        for name in ("tau_pre_ms", "tau_post_ms"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v > 0):
                raise ConfigError(f"{name} must be a positive number of ms, got {v!r}")
        if not self.w_min < self.w_max:
            raise ConfigError(f"weight bounds need w_min < w_max, got {self.w_min}, {self.w_max}")
        if self.pairing not in ("all-to-all", "nearest"):
            raise ConfigError(f"pairing must be 'all-to-all' or 'nearest', got {self.pairing!r}")
        if self.bounds not in ("hard", "soft"):
            raise ConfigError(f"bounds must be 'hard' or 'soft', got {self.bounds!r}")

    def same_traces(self, other: TraceSTDPParams) -> bool:
        """True when ``other`` differs at most in its learning rates (rules can be merged)."""
        return dataclasses.replace(other, lr1=self.lr1, lr2=self.lr2) == self


def _bound(p: TraceSTDPParams, w, delta):
    lo = jnp.asarray(p.w_min, w.dtype)
    hi = jnp.asarray(p.w_max, w.dtype)
    if p.bounds == "soft":
        span = jnp.asarray(p.w_max - p.w_min, w.dtype)
        delta = jnp.where(delta > 0, delta * (hi - w) / span, delta * (w - lo) / span)
    return jnp.clip(w + delta, lo, hi)


def _trace_rule(p: TraceSTDPParams, lr_fn: Callable) -> LearningRule:
    """Trace rule whose per-column rates ``(lr1[n_post], lr2[n_post])`` come from ``lr_fn(act, n_post, dtype)``."""

    def init(w):
        return TraceState(jnp.zeros((w.shape[0],), w.dtype), jnp.zeros((w.shape[1],), w.dtype))

    def update(w, s: TraceState, act: Activity):
        dtype = w.dtype
        n_pre, n_post = w.shape
        lr1, lr2 = lr_fn(act, n_post, dtype)
        gain = jnp.asarray(act.gain, dtype)
        lr1 = gain * lr1
        lr2 = gain * lr2
        apre = s.apre * decay_factor(act.dt_ms, p.tau_pre_ms, dtype)
        apost = s.apost * decay_factor(act.dt_ms, p.tau_post_ms, dtype)
        a_pre = jnp.asarray(p.a_pre, dtype)
        a_post = jnp.asarray(p.a_post, dtype)
        pre = jnp.asarray(act.pre, bool)
        post = jnp.asarray(act.post, bool)

        # ---- on_pre: Apre += a_pre; w = bound(w + lr1*Apost) on the rows of spiking inputs
        if act.pre_idx is None:
            apre = jnp.where(pre, a_pre if p.pairing == "nearest" else apre + a_pre, apre)
            w = jnp.where(pre[:, None], _bound(p, w, lr1 * apost[None, :]), w)
        else:

            def on_pre(idx, c):
                w_, apre_ = c
                if p.pairing == "nearest":
                    apre_ = apre_.at[idx].set(a_pre, mode="drop")
                else:
                    apre_ = apre_.at[idx].add(a_pre, mode="drop")
                rows = w_.at[idx].get(mode="fill", fill_value=0)
                w_ = w_.at[idx].set(_bound(p, rows, lr1 * apost[None, :]), mode="drop")
                return w_, apre_

            w, apre = for_each_event(pre, act.pre_idx, on_pre, (w, apre), complete=act.idx_complete)

        # ---- on_post: Apost += a_post; w = bound(w + lr2*Apre) on the columns of spiking neurons
        if act.post_idx is None:
            apost = jnp.where(post, a_post if p.pairing == "nearest" else apost + a_post, apost)
            w = jnp.where(post[None, :], _bound(p, w, lr2[None, :] * apre[:, None]), w)
        else:

            def on_post(idx, c):
                w_, apost_ = c
                if p.pairing == "nearest":
                    apost_ = apost_.at[idx].set(a_post, mode="drop")
                else:
                    apost_ = apost_.at[idx].add(a_post, mode="drop")
                cols = w_.at[:, idx].get(mode="fill", fill_value=0)
                l2 = lr2.at[idx].get(mode="fill", fill_value=0)
                w_ = w_.at[:, idx].set(_bound(p, cols, l2[None, :] * apre[:, None]), mode="drop")
                return w_, apost_

            w, apost = for_each_event(post, act.post_idx, on_post, (w, apost), complete=act.idx_complete)
        return w, TraceState(apre, apost)

    # soft bounds: the increments do not commute with clipping, no deferred form
    fast = PairTraceForm(p, lr_fn) if p.bounds == "hard" else None
    return LearningRule(init, update, fast=fast)


def _const_lr(p: TraceSTDPParams):
    def lr_fn(act, n_post, dtype):
        return jnp.full((n_post,), p.lr1, dtype), jnp.full((n_post,), p.lr2, dtype)

    return lr_fn


def stdp(
    *,
    tau_pre_ms: float = 20.0,
    tau_post_ms: float = 20.0,
    a_pre: float = 5e-4,
    a_post: float = -5.25e-4,
    w_min: float = 0.0,
    w_max: float = 0.05,
    lr1: float = 1.0,
    lr2: float = 1.0,
    pairing: str = "all-to-all",
    bounds: str = "hard",
) -> LearningRule:
    """Pair-based trace STDP, exact trace decay (thesis constants: τ 20 ms, 5e-4 / −5.25e-4, gmax 0.05)."""
    p = TraceSTDPParams(tau_pre_ms, tau_post_ms, a_pre, a_post, w_min, w_max, lr1, lr2, pairing, bounds)
    return _trace_rule(p, _const_lr(p))


def all_ltd(
    *,
    tau_pre_ms: float = 20.0,
    tau_post_ms: float = 20.0,
    a_pre: float = 5e-4,
    a_post: float = -5.25e-4,
    w_min: float = 0.0,
    w_max: float = 0.05,
    lr1: float = 1.0,
    lr2: float = -1.0,
    pairing: str = "all-to-all",
    bounds: str = "hard",
) -> LearningRule:
    """All-LTD: trace STDP with lr2 = −1, depression for both spike orders (thesis). The parameters are
    :func:`stdp`'s (listed, so that a misspelt one is refused by name before anything runs)."""
    return stdp(**locals())


# ----------------------------------------------------------------------------------------------
# Diehl & Cook 2015 STDP
# ----------------------------------------------------------------------------------------------


class DC15State(NamedTuple):
    """Traces ``pre[n_pre]``, ``post1[n_post]``, ``post2[n_post]`` (set to 1 on a spike)."""

    pre: jnp.ndarray
    post1: jnp.ndarray
    post2: jnp.ndarray


def stdp_dc15(
    *,
    tau_pre_ms: float = 20.0,
    tau_post1_ms: float = 20.0,
    tau_post2_ms: float = 40.0,
    nu_pre: float = 1e-4,
    nu_post: float = 1e-2,
    w_min: float = 0.0,
    w_max: float = 1.0,
) -> LearningRule:
    """Diehl & Cook 2015 STDP: set-to-1 traces; pre: w −= ν_pre·post1; post: w += ν_post·pre·post2(before).

    ``activity.gate``, when given, scales both rates per postsynaptic neuron.
    """
    for name, v in (("tau_pre_ms", tau_pre_ms), ("tau_post1_ms", tau_post1_ms), ("tau_post2_ms", tau_post2_ms)):
        if not v > 0:
            raise ConfigError(f"{name} must be a positive number of ms, got {v!r}")
    if not w_min < w_max:
        raise ConfigError(f"weight bounds need w_min < w_max, got {w_min}, {w_max}")

    def init(w):
        return DC15State(jnp.zeros((w.shape[0],), w.dtype), jnp.zeros((w.shape[1],), w.dtype), jnp.zeros((w.shape[1],), w.dtype))

    def update(w, s: DC15State, act: Activity):
        dtype = w.dtype
        gain = jnp.asarray(act.gain, dtype)
        n_post = w.shape[1]
        g = _gate(act, n_post, dtype) if act.gate is not None else None
        npre = gain * jnp.asarray(nu_pre, dtype)
        npost = gain * jnp.asarray(nu_post, dtype)
        lo, hi = jnp.asarray(w_min, dtype), jnp.asarray(w_max, dtype)
        pre_t = s.pre * decay_factor(act.dt_ms, tau_pre_ms, dtype)
        post1 = s.post1 * decay_factor(act.dt_ms, tau_post1_ms, dtype)
        post2 = s.post2 * decay_factor(act.dt_ms, tau_post2_ms, dtype)
        one = jnp.asarray(1.0, dtype)
        pre = jnp.asarray(act.pre, bool)
        post = jnp.asarray(act.post, bool)
        dep = npre * post1 if g is None else npre * post1 * g
        if act.pre_idx is None:
            pre_t = jnp.where(pre, one, pre_t)
            w = jnp.where(pre[:, None], jnp.clip(w - dep[None, :], lo, hi), w)
        else:

            def on_pre(idx, c):
                w_, tr = c
                rows = w_.at[idx].get(mode="fill", fill_value=0)
                w_ = w_.at[idx].set(jnp.clip(rows - dep[None, :], lo, hi), mode="drop")
                return w_, tr.at[idx].set(one, mode="drop")

            w, pre_t = for_each_event(pre, act.pre_idx, on_pre, (w, pre_t), complete=act.idx_complete)
        pot = npost * post2 if g is None else npost * post2 * g
        if act.post_idx is None:
            w = jnp.where(post[None, :], jnp.clip(w + pre_t[:, None] * pot[None, :], lo, hi), w)
            post1 = jnp.where(post, one, post1)
            post2 = jnp.where(post, one, post2)
        else:

            def on_post(idx, c):
                w_, p1, p2 = c
                cols = w_.at[:, idx].get(mode="fill", fill_value=0)
                k = pot.at[idx].get(mode="fill", fill_value=0)
                w_ = w_.at[:, idx].set(jnp.clip(cols + pre_t[:, None] * k[None, :], lo, hi), mode="drop")
                return w_, p1.at[idx].set(one, mode="drop"), p2.at[idx].set(one, mode="drop")

            w, post1, post2 = for_each_event(post, act.post_idx, on_post, (w, post1, post2),
                                              complete=act.idx_complete)
        return w, DC15State(pre_t, post1, post2)

    return LearningRule(init, update, fast=DC15Form(tau_pre_ms, w_min, w_max, tau_post1_ms, tau_post2_ms, nu_pre, nu_post))


# ----------------------------------------------------------------------------------------------
# segment-supervised pairing
# ----------------------------------------------------------------------------------------------

_TRACE_FAMILY = {"stdp": {}, "all-ltd": {"lr2": -1.0}}


def _trace_params(name: str, params: dict | None) -> TraceSTDPParams | None:
    if not isinstance(name, str) or name not in _TRACE_FAMILY:
        return None
    kw = {**_TRACE_FAMILY[name], **(params or {})}
    try:
        return TraceSTDPParams(**kw)
    except TypeError as exc:
        raise ConfigError(f"rule {name!r}: {exc}") from exc


def _make(rule, params, registry=None) -> LearningRule:
    """``rule`` itself when it is built, else the rule plugin of that name built with ``params`` by
    ``registry`` — the run's, so that a rule registered only there is found (the installed plugins'
    registry only when none is given, e.g. a call from Python without a run)."""
    if isinstance(rule, LearningRule):
        return rule
    if registry is None:
        from snnjax.plugins import get_registry

        registry = get_registry()
    elif not callable(getattr(registry, "create", None)):
        raise ConfigError(f"segment-supervised: registry must be a plugin registry (snnjax.plugins.Registry), "
                          f"got {registry!r}")
    return registry.create("rule", rule, **(params or {}))


def segment_supervised(
    *,
    n_classes: int = 3,
    target: str | LearningRule = "stdp",
    others: str | LearningRule = "all-ltd",
    target_params: dict | None = None,
    others_params: dict | None = None,
    registry=None,
) -> LearningRule:
    """Supervised segments: the label's segment learns by ``target`` (STDP), the others by ``others`` (All-LTD).

    Which neurons form the label's segment comes from ``activity.gate`` (> 0 on the
    label's segment; see :func:`segment_gate`); without a gate every neuron
    learns by ``target``. Two rules of the trace family (``stdp``, ``all-ltd``)
    that differ only in their learning rates are merged into one rule with
    per-column rates (no extra work); any other pair runs both rules and selects
    per column. A ``target``/``others`` given by name is built by ``registry`` (an experiment
    passes the run's: :func:`snnjax.plugins.create_choice` hands it to a factory that takes
    ``registry``), else by the registry of the installed plugins.
    """
    if not isinstance(n_classes, int) or n_classes <= 0:
        raise ConfigError(f"n_classes must be a positive integer, got {n_classes!r}")
    pa = _trace_params(target, target_params)
    pb = _trace_params(others, others_params)

    def check(w):
        n_post = w.shape[-1]
        if n_post % n_classes:
            raise ConfigError(
                f"segment-supervised: {n_post} postsynaptic neurons cannot be split into {n_classes} equal "
                f"segments (one per class); choose a neuron count that is a multiple of n_classes."
            )

    if pa is not None and pb is not None and pa.same_traces(pb):

        def lr_fn(act, n_post, dtype):
            sel = _gate(act, n_post, dtype) > 0
            lr1 = jnp.where(sel, jnp.asarray(pa.lr1, dtype), jnp.asarray(pb.lr1, dtype))
            lr2 = jnp.where(sel, jnp.asarray(pa.lr2, dtype), jnp.asarray(pb.lr2, dtype))
            return lr1, lr2

        merged = _trace_rule(pa, lr_fn)

        def init(w):
            check(w)
            return merged.init(w)

        return merged._replace(init=init)

    ra, rb = _make(target, target_params, registry), _make(others, others_params, registry)

    def init2(w):
        check(w)
        return (ra.init(w), rb.init(w))

    def prepare2(w, s, act):
        sel = _gate(act, w.shape[-1], w.dtype) > 0
        return jnp.where(sel[None, :], ra.prepare(w, s[0], act), rb.prepare(w, s[1], act))

    def update2(w, s, act):
        sel = _gate(act, w.shape[-1], w.dtype) > 0
        wa, sa = ra.update(w, s[0], act)
        wb, sb = rb.update(w, s[1], act)
        return jnp.where(sel[None, :], wa, wb), (sa, sb)

    return LearningRule(init2, update2, prepare2)


# ----------------------------------------------------------------------------------------------
# declared deferred (fast) forms of the hard-bounded trace rules (see snnjax.deferred)
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PairTraceForm(DeferredTrace):
    r"""Deferred form of the pair-based trace rule with hard bounds (``stdp``, ``all_ltd``, merged segments).

    on_pre of input ``i``: ``a_i ← a_i + a_pre`` (``nearest``: ``← a_pre``), ``W[i, :] += lr1·Apost``;
    on_post of ``j``: ``W[:, j] += lr2_j·Apre``, so ``x_j = 1`` for a spike. Rates come from ``lr_fn``.
    """

    trace: TraceSTDPParams
    lr_fn: Callable

    @property
    def tau_pre_ms(self) -> float:
        return self.trace.tau_pre_ms

    @property
    def w_min(self) -> float:
        return self.trace.w_min

    @property
    def w_max(self) -> float:
        return self.trace.w_max

    def split(self, state):
        return state.apre, (state.apost,)

    def join(self, apre, post, decay_state=None):
        return TraceState(apre, post[0])

    def rates(self, gain, gate, n_post: int, dtype):
        gain = jnp.asarray(gain, dtype)
        lr1, lr2 = self.lr_fn(Activity(pre=None, post=None, gate=gate), n_post, dtype)
        return gain * lr1, gain * lr2

    def decay_post(self, post, dt_ms: float):
        return (post[0] * decay_factor(dt_ms, self.trace.tau_post_ms, post[0].dtype),)

    def pre_value(self, a_now):
        a = jnp.asarray(self.trace.a_pre, a_now.dtype)
        return jnp.full_like(a_now, a) if self.trace.pairing == "nearest" else a_now + a

    def pre_row_delta(self, post, lr_pre):
        return lr_pre * post[0]

    def post_weight(self, post, spikes):
        return spikes.astype(post[0].dtype)

    def post_spike(self, post, spikes):
        a = jnp.asarray(self.trace.a_post, post[0].dtype)
        new = a if self.trace.pairing == "nearest" else post[0] + a
        return (jnp.where(spikes, new, post[0]),)


@dataclasses.dataclass(frozen=True)
class DC15Form(DeferredTrace):
    r"""Deferred form of :func:`stdp_dc15`: set-to-1 traces, on_pre ``W[i, :] −= ν_pre·g·post1``,
    on_post ``W[:, j] += ν_post·g_j·pre_i·post2_j`` (``x_j = post2_j`` before the spike)."""

    tau_pre_ms: float
    w_min: float
    w_max: float
    tau_post1_ms: float
    tau_post2_ms: float
    nu_pre: float
    nu_post: float

    def split(self, state):
        return state.pre, (state.post1, state.post2)

    def join(self, apre, post, decay_state=None):
        return DC15State(apre, post[0], post[1])

    def rates(self, gain, gate, n_post: int, dtype):
        gain = jnp.asarray(gain, dtype)
        g = jnp.ones((n_post,), dtype) if gate is None else jnp.asarray(gate, dtype)
        return gain * jnp.asarray(self.nu_pre, dtype) * g, gain * jnp.asarray(self.nu_post, dtype) * g

    def decay_post(self, post, dt_ms: float):
        return (post[0] * decay_factor(dt_ms, self.tau_post1_ms, post[0].dtype),
                post[1] * decay_factor(dt_ms, self.tau_post2_ms, post[1].dtype))

    def pre_value(self, a_now):
        return jnp.ones_like(a_now)

    def pre_row_delta(self, post, lr_pre):
        return -(lr_pre * post[0])

    def post_weight(self, post, spikes):
        return spikes.astype(post[0].dtype) * post[1]

    def post_spike(self, post, spikes):
        one = jnp.ones((), post[0].dtype)
        return (jnp.where(spikes, one, post[0]), jnp.where(spikes, one, post[1]))


#: former name of the declared deferred form's base class (kept for callers)
LazyTrace = DeferredTrace


def lazy_form(rule) -> DeferredTrace | None:
    """The deferred form ``rule`` declares (its ``fast`` field), or ``None``: :func:`snnjax.deferred.fast_form`.

    The built-in hard-bounded trace rules declare one, and so does
    ``chain(such a rule, use_it_or_lose_it(semantics="lazy"))``; any other
    composition runs the general path.
    """
    return fast_form(rule)


@hookimpl
def snnjax_learning_rules():
    return {"stdp": stdp, "all-ltd": all_ltd, "stdp-dc15": stdp_dc15, "segment-supervised": segment_supervised}


__all__ = [
    "DC15State",
    "DC15Form",
    "LazyTrace",
    "PairTraceForm",
    "lazy_form",
    "TraceSTDPParams",
    "TraceState",
    "all_ltd",
    "decay_factor",
    "for_each_event",
    "segment_gate",
    "segment_supervised",
    "stdp",
    "stdp_dc15",
]
