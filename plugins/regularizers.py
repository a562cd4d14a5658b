r"""Built-in regularizers: the thesis' "use it or lose it" decay (Method 3).

A synapse whose presynaptic neuron stays silent loses weight with the time
since that neuron's last spike ``t_s``:

.. math::

    w(t) = w(t_s)\,\exp\!\big[-k_p\,((t - t_s)/\tau_{prun})^2\big],\qquad k_p \in \{0, 1\}.

The regularizer is a :class:`~snnjax.plasticity.LearningRule` *transform*: it
composes with any rule through :func:`snnjax.plasticity.chain`, e.g.
``chain(stdp_rule, use_it_or_lose_it())``, and runs under ``jit`` / ``vmap``.
Its state is :class:`UseItOrLoseItState`: the per-presynaptic last-spike time
``t_s`` (ms, starts at 0 as in the original) and the strength ``k_p`` (a
scalar *in the state*, so that a compiled program switches it without being
rebuilt: :func:`set_kp`). ``k_p`` is independent of ``activity.gain``: the
thesis' flush runs with learning off (gain 0) but ``k_p = 1``.

When ``k_p`` is 1 matters as much as the formula. The thesis text describes
the decay acting during training (``k_p = 1`` throughout); applied that way it
silences the thesis' Method 3 network. The authors' Brian 2 code ran otherwise:
``k_p`` is the synapse model variable ``test_stop``, which Brian 2 starts at 0
and the notebooks first set to 1 for the flush (the global ``test_stop = 1`` is
shadowed by it; Brian 2 warns that the internal variable will be used). So
training ran with ``k_p = 0`` while ``t_s`` was stamped at every spike, and the
flush applied ``exp(−((t_flush − t_s)/τ)²)`` once per input: a one-shot pruning
by recency. The ``use-it-or-lose-it`` experiment's default is that schedule
(``k_p_train = 0``, ``k_p_flush = 1``, ``k_p_test = 0``; see
docs/reproductions/method3.md).

Two semantics (``semantics=``):

``"lazy"`` (the original code)
    At each presynaptic spike of input ``i`` at time ``t`` (the step's start
    time, ``activity.t_ms``), *before* the spike is transmitted (in
    ``prepare``), row ``i`` is multiplied by ``exp(−k_p·((t − t_s[i])/τ)²)``;
    then (in ``update``) ``t_s[i] ← t``. Between spikes a row is not touched,
    so STDP changes made in between (potentiation by postsynaptic spikes) are
    decayed at the next presynaptic spike by the full factor since ``t_s``.
    Pending decay of a silent input is applied only at its next spike, hence
    the thesis' *flush* after training (50 ms of all inputs at 63 Hz, learning
    off, ``k_p = 1``), or :func:`apply_pending` (the same, exactly, without
    running the network).

``"continuous"``
    The decay is applied as time passes, at the end of every step (in
    ``update``, after the preceding rules and after ``t_s`` has been set for
    the inputs that spiked in this step), to every row::

        w ← w · exp(−k_p·((t + dt − t_s)² − (t − t_s)²)/τ²)

    so that the weights at the start of each step are the weights at that
    time. The factors telescope: without other plasticity, a row last spiking
    at ``t_s`` holds ``w(t_s⁺)·exp(−k_p((t − t_s)/τ)²)`` at time ``t``, where
    ``w(t_s⁺)`` is its value after the spike step's updates. An STDP change
    ``Δ`` made at ``t'`` is carried along and decays by
    ``exp(−k_p((t − t_s)² − (t' − t_s)²)/τ²)`` until ``t``. A presynaptic spike
    does not apply anything extra: it only restarts the clock of its row. This
    is a dense per-step update of the whole weight matrix (the lazy form only
    touches the rows of spiking inputs). In float32 a per-step factor closer
    to 1 than the float spacing is lost to rounding; the effect on the total
    decay is below 1e-4 relative (see the tests).

``τ_prun`` (``tau_prun_ms``): ``None`` means the thesis' rule,
``5 × n_classes × image_ms`` (3 classes × 500 ms → 7,500 ms).

Options beyond the thesis (lazy semantics only; each off by default, and then
the program is the one above, bit for bit). They were tried to keep the decay
*during training* (``k_p = 1`` in training) from silencing the Method 3 network
(docs/reproductions/method3.md, *Beyond the thesis*):

``grace_ms = g`` (ms, ≥ 0)
    A gap shorter than ``g`` costs nothing: the factor at a spike is
    ``exp(−k_p·(max(t − t_s − g, 0)/τ)²)``. The rule keeps its fast form.
    With ``g = 30,000`` ms and ``k_p = 1`` in training the Method 3 network
    stays alive and meets the thesis' goals (one pass, 16 seeds); the other two
    options did not (silent, or noise above 5 %).

``protect = "label"``
    While learning is on (``gain > 0``), a spike of a neuron of the label's
    segment (``gate > 0``) at ``t`` restarts every row's clock: at a presynaptic
    spike the age is ``t − max(t_s[i], t_label)``, ``t_label`` being the last
    such spike (state ``t_label``, ms, starts at 0). The decay then acts in
    training only through stretches in which the label's segment is silent.
    With learning off (the flush, test) the age is ``t − t_s[i]``, as without
    the option. General plasticity path only.

``floor = ρ`` (0 < ρ ≤ 1)
    A homeostatic floor on each neuron's total input weight as the decay sees
    it: at the end of every step in which learning is on and ``k_p > 0``, with
    ``S_j = Σ_i w_ij·φ_i`` (``φ_i`` the lazy factor row ``i`` would get at a
    spike now, so that a silent input's pending decay counts), a column with
    ``S_j < ρ·S_j⁰`` (``S_j⁰``: its sum at ``init``, state ``floor``) is scaled
    up to it, ``w_:j ← w_:j · ρS_j⁰/S_j``. The scaling is not clipped to the
    rule's weight bound. Dense (every step touches the whole matrix); general
    plasticity path only.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from snnjax.deferred import DeferredRowDecay
from snnjax.errors import ConfigError
from snnjax.hookspecs import hookimpl
from snnjax.plasticity import Activity, LearningRule, for_each_event, part_state, replace_part_state

SEMANTICS = ("lazy", "continuous")


class UseItOrLoseItState(NamedTuple):
    """State of :func:`use_it_or_lose_it`.

    Attributes:
        t_s: ``float[n_pre]`` time of each presynaptic neuron's last spike, ms (starts at 0).
        k_p: scalar decay strength, 0 (off) or 1 (on); switch it with :func:`set_kp`.
        t_label: scalar time of the last spike of a neuron of the label's segment while
            learning, ms (only with ``protect = "label"``; else ``None``).
        floor: ``float[n_post]`` each neuron's floor ``ρ·S_j⁰`` on its total input weight
            (only with ``floor > 0``; else ``None``).
    """

    t_s: jnp.ndarray
    k_p: jnp.ndarray
    t_label: jnp.ndarray | None = None
    floor: jnp.ndarray | None = None


def default_tau_prun_ms(n_classes: int = 3, image_ms: float = 500.0) -> float:
    """The thesis' rule ``τ_prun = 5 × n_classes × image_ms`` (3 × 500 ms → 7,500 ms)."""
    return 5.0 * n_classes * image_ms


def check_kp(k_p: Any, what: str = "k_p") -> float:
    """``k_p`` as a float, or a :class:`ConfigError` when it is not 0 or 1."""
    try:
        v = float(k_p)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be 0 or 1, got {k_p!r}") from None
    if isinstance(k_p, bool) or v not in (0.0, 1.0):
        raise ConfigError(f"{what} must be 0 (no decay) or 1 (decay), got {k_p!r}")
    return v


def resolve_tau_prun_ms(tau_prun_ms: float | None, n_classes: int = 3, image_ms: float = 500.0) -> float:
    """``tau_prun_ms``, or the thesis' rule when ``None``; a :class:`ConfigError` unless positive."""
    if tau_prun_ms is None:
        if not (isinstance(n_classes, int) and n_classes > 0):
            raise ConfigError(f"n_classes must be a positive integer, got {n_classes!r}")
        if not image_ms > 0:
            raise ConfigError(f"image_ms must be a positive number of ms, got {image_ms!r}")
        return default_tau_prun_ms(n_classes, image_ms)
    if isinstance(tau_prun_ms, bool) or not isinstance(tau_prun_ms, (int, float)) or not tau_prun_ms > 0:
        raise ConfigError(f"tau_prun_ms must be a positive number of ms (or None for 5 × n_classes × image_ms), "
                          f"got {tau_prun_ms!r}")
    return float(tau_prun_ms)


def lazy_factor(t, t_s, k_p, tau, grace_ms: float = 0.0):
    """``exp(−k_p·(max(t − t_s − g, 0)/τ)²)``: the lazy decay a row gets at a presynaptic spike at ``t`` (ms).

    ``g = grace_ms`` (a static Python number; 0, the thesis' formula, by default).
    """
    if grace_ms:
        x = jnp.maximum(t - t_s - jnp.asarray(grace_ms, jnp.result_type(t_s)), 0) / tau
    else:
        x = (t - t_s) / tau
    return jnp.exp(-k_p * x * x)


PROTECT = ("none", "label")


def check_options(grace_ms: Any, protect: Any, floor: Any, semantics: str = "lazy") -> tuple[float, str, float]:
    """The options beyond the thesis, checked: ``(grace_ms, protect, floor)`` or a :class:`ConfigError`."""
    if isinstance(grace_ms, bool) or not isinstance(grace_ms, (int, float)) or not grace_ms >= 0 \
            or grace_ms == float("inf"):
        raise ConfigError(f"grace_ms must be a number of ms ≥ 0 (0 = off), got {grace_ms!r}")
    if protect not in PROTECT:
        raise ConfigError(f"protect must be one of {', '.join(PROTECT)}, got {protect!r}")
    if isinstance(floor, bool) or not isinstance(floor, (int, float)) or not 0 <= floor <= 1:
        raise ConfigError(f"floor must be a fraction 0 ≤ ρ ≤ 1 of each neuron's initial total input weight "
                          f"(0 = off), got {floor!r}")
    if semantics != "lazy" and (grace_ms or protect != "none" or floor):
        raise ConfigError(f"grace_ms, protect and floor are options of the lazy semantics only, got "
                          f"semantics = {semantics!r}")
    return float(grace_ms), str(protect), float(floor)


def floor_columns(w, floor, row_factor=None):
    """``w`` with each column ``j`` whose sum is below ``floor[j]`` scaled up to it (``floor``: ``[n_post]``).

    With ``row_factor`` (``[n_pre]``) the sum is ``Σ_i w_ij·row_factor_i`` (the pending decay counted).
    """
    total = jnp.sum(w if row_factor is None else w * row_factor[:, None], axis=0)
    scale = jnp.where((total < floor) & (total > 0), floor / jnp.where(total > 0, total, 1), 1)
    return w * scale[None, :].astype(w.dtype)


@dataclasses.dataclass(frozen=True)
class LazyUseItOrLoseIt(DeferredRowDecay):
    """Declared fast form of :func:`use_it_or_lose_it` with the lazy semantics (τ_prun in ms).

    Chained after a rule that declares a :class:`~snnjax.deferred.DeferredTrace`, the
    network's fast path applies :func:`lazy_factor` to a row where it flushes it, just
    before the input's spike is transmitted, as the regularizer's ``prepare`` does.
    """

    tau_prun_ms: float
    grace_ms: float = 0.0

    def times(self, state: UseItOrLoseItState):
        return state.t_s

    def strength(self, state: UseItOrLoseItState):
        return state.k_p

    def with_times(self, state: UseItOrLoseItState, t_s):
        return state._replace(t_s=t_s)

    def row_factor(self, t_ms, t_s, strength, dtype):
        return lazy_factor(t_ms, t_s, jnp.asarray(strength, dtype), jnp.asarray(self.tau_prun_ms, dtype),
                           self.grace_ms)


def lazy_decay_tau(rule: LearningRule) -> float | None:
    """τ_prun (ms) if ``rule`` is a :func:`use_it_or_lose_it` with the lazy semantics, else ``None``.

    Read from the form the regularizer declares (``rule.fast``, a :class:`LazyUseItOrLoseIt`).
    """
    form = getattr(rule, "fast", None)
    return form.tau_prun_ms if isinstance(form, LazyUseItOrLoseIt) else None


def use_it_or_lose_it(
    *,
    tau_prun_ms: float | None = None,
    k_p: float = 1.0,
    semantics: str = "lazy",
    n_classes: int = 3,
    image_ms: float = 500.0,
    grace_ms: float = 0.0,
    protect: str = "none",
    floor: float = 0.0,
) -> LearningRule:
    """Use it or lose it: silent inputs' weights decay as exp(−k_p((t − t_s)/τ_prun)²) (thesis Method 3).

    Args:
        tau_prun_ms: decay time τ_prun in ms; ``None``: ``5 × n_classes × image_ms`` (7,500 ms).
        k_p: initial strength, 0 or 1 (kept in the state; :func:`set_kp` switches it).
        semantics: ``"lazy"`` (the original: applied at the next presynaptic spike,
            before transmission) or ``"continuous"`` (applied every step). See the module docs.
        n_classes, image_ms: only for the default τ_prun.
        grace_ms, protect, floor: options beyond the thesis (lazy only; off by default): see the module docs.
    """
    tau = resolve_tau_prun_ms(tau_prun_ms, n_classes, image_ms)
    k0 = check_kp(k_p)
    if semantics not in SEMANTICS:
        raise ConfigError(f"semantics must be one of {', '.join(SEMANTICS)}, got {semantics!r}")
    grace, protect, rho = check_options(grace_ms, protect, floor, semantics)
    protecting = protect == "label"

    def init(w):
        return UseItOrLoseItState(
            jnp.zeros((w.shape[0],), w.dtype), jnp.asarray(k0, w.dtype),
            t_label=jnp.zeros((), w.dtype) if protecting else None,
            floor=(rho * jnp.sum(w, axis=0)).astype(w.dtype) if rho else None)

    def _stamp(s: UseItOrLoseItState, act: Activity, dtype):
        t = jnp.asarray(act.t_ms, dtype)
        pre = jnp.asarray(act.pre, bool)
        return s._replace(t_s=jnp.where(pre, t, s.t_s))

    if semantics == "lazy":

        def clock(ts, s: UseItOrLoseItState, act: Activity, dtype):
            """The rows' last use: ``t_s``, or with ``protect = "label"`` while learning ``max(t_s, t_label)``."""
            if not protecting:
                return ts
            learning = jnp.asarray(act.gain, dtype) > 0
            return jnp.where(learning, jnp.maximum(ts, s.t_label), ts)

        def prepare(w, s: UseItOrLoseItState, act: Activity):
            dtype = w.dtype
            t = jnp.asarray(act.t_ms, dtype)
            k_p_ = jnp.asarray(s.k_p, dtype)
            tau_ = jnp.asarray(tau, dtype)
            pre = jnp.asarray(act.pre, bool)
            if act.pre_idx is None:
                f = lazy_factor(t, clock(s.t_s, s, act, dtype), k_p_, tau_, grace)
                return jnp.where(pre[:, None], w * f[:, None], w)

            def decay_rows(idx, w_):
                ts = clock(s.t_s.at[idx].get(mode="fill", fill_value=0), s, act, dtype)
                f = lazy_factor(t, ts, k_p_, tau_, grace)
                rows = w_.at[idx].get(mode="fill", fill_value=0)
                return w_.at[idx].set(rows * f[:, None], mode="drop")

            return for_each_event(pre, act.pre_idx, decay_rows, w, complete=act.idx_complete)

        def update(w, s: UseItOrLoseItState, act: Activity):
            dtype = w.dtype
            s = _stamp(s, act, dtype)
            if protecting or rho:
                learning = jnp.asarray(act.gain, dtype) > 0
            if protecting:
                gate = jnp.ones(jnp.shape(act.post), dtype) if act.gate is None else jnp.asarray(act.gate, dtype)
                fired = jnp.any(jnp.asarray(act.post, bool) & (gate > 0)) & learning
                s = s._replace(t_label=jnp.where(fired, jnp.asarray(act.t_ms, dtype), s.t_label))
            if rho:
                t = jnp.asarray(act.t_ms, dtype)
                pending = lazy_factor(t, clock(s.t_s, s, act, dtype), jnp.asarray(s.k_p, dtype),
                                      jnp.asarray(tau, dtype), grace)
                w = jnp.where(learning & (s.k_p > 0), floor_columns(w, s.floor, pending), w)
            return w, s

        # the options that need the postsynaptic spikes or the whole matrix have no fast form
        fast = None if (protecting or rho) else LazyUseItOrLoseIt(tau, grace)
        return LearningRule(init, update, prepare, fast=fast)

    def update_continuous(w, s: UseItOrLoseItState, act: Activity):
        dtype = w.dtype
        s = _stamp(s, act, dtype)
        t = jnp.asarray(act.t_ms, dtype)
        dt = jnp.asarray(act.dt_ms, dtype)
        age = t - s.t_s  # ≥ 0
        # (age + dt)² − age² = dt·(2·age + dt), computed without cancellation
        f = jnp.exp(-jnp.asarray(s.k_p, dtype) * dt * (2 * age + dt) / jnp.asarray(tau * tau, dtype))
        return w * f[:, None], s

    return LearningRule(init, update_continuous)


# ----------------------------------------------------------------------------------------------
# helpers on states (work on any pytree holding UseItOrLoseItState leaves, e.g. a chain's state)
# ----------------------------------------------------------------------------------------------


def _is_state(x) -> bool:
    return isinstance(x, UseItOrLoseItState)


def set_kp(tree: Any, k_p) -> Any:
    """``tree`` with ``k_p`` set in every :class:`UseItOrLoseItState` it holds.

    ``tree`` may be a regularizer state, a :func:`~snnjax.plasticity.chain`'s
    state tuple or a whole network state; batched (vmapped) states get ``k_p``
    broadcast to their leading axes. ``k_p`` may be a traced value (no
    recompilation to switch it); Python numbers are checked to be 0 or 1.
    """
    if isinstance(k_p, (int, float)):
        k_p = check_kp(k_p)

    def fix(x):
        if _is_state(x):
            return x._replace(k_p=jnp.broadcast_to(jnp.asarray(k_p, x.k_p.dtype), x.k_p.shape))
        return x

    return jax.tree_util.tree_map(fix, tree, is_leaf=_is_state)


def find_state(tree: Any) -> UseItOrLoseItState:
    """The (first) :class:`UseItOrLoseItState` inside ``tree``; a :class:`ConfigError` when there is none."""
    found = [x for x in jax.tree_util.tree_leaves(tree, is_leaf=_is_state) if _is_state(x)]
    if not found:
        raise ConfigError("this state holds no use-it-or-lose-it regularizer state")
    return found[0]


def kp_of(rule: LearningRule, state: Any, name: str):
    """The ``k_p`` of the use-it-or-lose-it part ``name`` of the chain ``rule`` (by name, no type search)."""
    return part_state(rule, state, name).k_p


def set_kp_of(rule: LearningRule, state: Any, name: str, k_p) -> Any:
    """A chain's ``state`` with ``k_p`` set in its use-it-or-lose-it part ``name`` (batched states work)."""
    if isinstance(k_p, (int, float)):
        k_p = check_kp(k_p)
    reg = part_state(rule, state, name)
    new = reg._replace(k_p=jnp.broadcast_to(jnp.asarray(k_p, reg.k_p.dtype), reg.k_p.shape))
    return replace_part_state(rule, state, name, new)


def apply_pending(w, state: UseItOrLoseItState, t_ms, tau_prun_ms: float, k_p=None, grace_ms: float = 0.0):
    """Apply the pending lazy decay to every row at time ``t_ms``, as if every input spiked then.

    Returns ``(w, state)`` with ``t_s = t_ms`` everywhere. ``k_p`` defaults to
    the state's. An exact, deterministic alternative to the thesis' Poisson flush
    (which misses the ≈ 4 % of inputs that stay silent through 50 ms at 63 Hz).
    """
    dtype = w.dtype
    t = jnp.asarray(t_ms, dtype)
    k = jnp.asarray(state.k_p if k_p is None else k_p, dtype)
    f = lazy_factor(t, state.t_s, k, jnp.asarray(tau_prun_ms, dtype), grace_ms)
    return w * f[:, None], state._replace(t_s=jnp.full_like(state.t_s, t))


@hookimpl
def snnjax_regularizers():
    return {"use-it-or-lose-it": use_it_or_lose_it}


__all__ = [
    "PROTECT",
    "SEMANTICS",
    "LazyUseItOrLoseIt",
    "UseItOrLoseItState",
    "apply_pending",
    "check_kp",
    "check_options",
    "default_tau_prun_ms",
    "find_state",
    "floor_columns",
    "kp_of",
    "lazy_decay_tau",
    "lazy_factor",
    "resolve_tau_prun_ms",
    "set_kp",
    "set_kp_of",
    "use_it_or_lose_it",
]
