r"""Composable plasticity: learning rules as ``(init, update)`` pairs of pure functions.

A :class:`LearningRule` is shaped like an optax ``GradientTransformation``:

* ``init(weights) -> state`` builds the rule's state pytree (traces, schedules,
  keys, last-spike times ...);
* ``update(weights, state, activity) -> (weights, state)`` applies one time
  step of plasticity, given the step's :class:`Activity` (spikes and context).

Unlike optax, ``update`` returns the *new weights* rather than a delta: the
reference simulators clip after every event, and ``w + (clip(w + Δ) - w)`` is
not always ``clip(w + Δ)`` in floating point, which would break exact
agreement with them.

An optional third function, ``prepare(weights, state, activity) -> weights``,
runs *before* the step's spikes are transmitted (a lazily applied decay must act
before the presynaptic spike reads the weight). It must not change the state.

:func:`chain` / :func:`named_chain` compose rules and transforms — masks
(:func:`freeze`), bounds (:func:`clip`, :func:`clip_per_weight`), decays — into
one rule. Transforms see the weights as the previous element left them, and
``activity.w_before`` (the weights at the start of the step). A chain keeps its
parts on the value (``rule.parts``: ``(name, rule)`` pairs, as optax's
``named_chain``) and its state is the tuple of the parts' states in that order;
:func:`part_state` / :func:`replace_part_state` address a part's state by name.

A rule may declare a faster, equivalent form in its ``fast`` field (an instance
of :class:`snnjax.deferred.DeferredTrace`); a chain declares the composition of
its parts' forms when one exists (:func:`snnjax.deferred.compose_fast`). A rule
whose step changes only a few rows of the weights (a winner-take-all rule) may
declare a :class:`RowLocal` form in ``row_local``; the bounds and masks here
declare theirs, and a chain composes them (:func:`row_local_step` runs one).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Bool, Float, Int

from .deferred import compose_fast

State = Any


class Activity(NamedTuple):
    """What a rule sees in one time step.

    Attributes:
        pre: ``bool[n_pre]`` presynaptic spikes in this step.
        post: ``bool[n_post]`` postsynaptic spikes in this step.
        t_ms: time of the step's start, ms.
        dt_ms: time step, ms.
        gain: scalar learning gain (``0.0`` switches learning off, e.g. at test).
        gate: ``float[n_post]`` per-postsynaptic modulation (e.g. 1 on the label's
            segment, 0 elsewhere; or a reward sign). Rules that ignore it may.
        pre_idx: indices of the spiking presynaptic neurons, padded with
            ``n_pre`` (an out-of-range index), for event-driven rules; or ``None``.
        post_idx: same for the postsynaptic neurons; or ``None``.
        w_before: the weights at the start of the step (filled by :func:`chain`).
        idx_complete: a static Python bool; ``True`` when ``pre_idx``/``post_idx`` hold every
            spike of ``pre``/``post`` (the engine counts any overflow itself), so that
            :func:`for_each_event` need not look for more.
    """

    pre: Bool[Array, " n_pre"]
    post: Bool[Array, " n_post"]
    t_ms: Float[Array, ""] | float = 0.0
    dt_ms: float = 0.1
    gain: Float[Array, ""] | float = 1.0
    gate: Float[Array, " n_post"] | None = None
    pre_idx: Int[Array, " k_pre"] | None = None
    post_idx: Int[Array, " k_post"] | None = None
    w_before: Float[Array, "n_pre n_post"] | None = None
    idx_complete: bool = False


def _identity_prepare(weights, state, activity):
    del state, activity
    return weights


class RowLocal(NamedTuple):
    r"""A declared row-local form of a rule: a capability, like :attr:`LearningRule.fast`.

    A *row* is a slice of the weights along axis 0 (a conv kernel's output feature, a dense
    layer's presynaptic neuron). The declaration says: when every row satisfies ``holds``, one
    ``update`` changes only the rows ``touched(activity)`` names, and changes them as
    ``update_rows`` does. An engine may then gather those rows, update them and scatter them
    back (:func:`row_local_step`) — the same bits as ``update``, without a pass over the whole
    array (a winner-take-all rule changes one kernel of 200). It checks ``holds`` on every row
    before (:func:`row_local_holds`) and on each changed row after every step, and runs
    ``update`` instead when a check fails.

    Attributes:
        touched: ``touched(activity) -> int[k]``: the rows one step may change (a static ``k``,
            padded with the out-of-range index ``n_rows``, each row at most once); ``None`` for a
            transform that changes only the rows others touched (a bound, a mask).
        update_rows: ``update_rows(w_rows, state, activity, rows) -> (w_rows, state)``: ``update``
            on the rows ``rows`` (``w_rows = weights[rows]``; ``activity.w_before`` holds the whole
            start-of-step weights); the state it returns equals ``update``'s.
        holds: ``holds(w_rows, rows) -> bool[k]``: per row, whether ``update`` leaves it bit for
            bit unchanged when the step does not touch it (e.g. it already lies within the bounds
            the update clamps to).
    """

    touched: Callable[[Any], Int[Array, " k"]] | None
    update_rows: Callable[[Any, State, Any, Int[Array, " k"]], tuple[Any, State]]
    holds: Callable[[Any, Int[Array, " k"]], Bool[Array, " k"]]


def unchanged_bits(new: Float[Array, "k ..."], old: Float[Array, "k ..."]) -> Bool[Array, " k"]:
    """Per row, whether ``new`` equals ``old`` bit for bit (``-0.0 ≠ 0.0``)."""
    bits = jnp.dtype(f"uint{8 * new.dtype.itemsize}")
    same = lax.bitcast_convert_type(new, bits) == lax.bitcast_convert_type(old, bits)
    return jnp.all(same.reshape(same.shape[0], -1), axis=1)


def _rows_of(values: Array, rows: Int[Array, " k"]) -> Array:
    """``values[rows]``; rows past the end (padding) read as NaN, which no caller keeps."""
    return values.at[rows].get(mode="fill", fill_value=jnp.nan if jnp.issubdtype(values.dtype, jnp.floating) else 0)


def _rows_like(values: Array, rows: Int[Array, " k"], w_rows: Array) -> Array:
    """A transform's per-weight ``values`` for the rows ``rows``; values that broadcast along
    axis 0 (a scalar, trailing dimensions only, a leading 1) apply to every row as they are."""
    if values.ndim < w_rows.ndim or values.shape[0] == 1:
        return values
    return _rows_of(values, rows)


def row_local_holds(form: RowLocal, weights: Float[Array, "n ..."]) -> Bool[Array, ""]:
    """Whether every row of ``weights`` satisfies ``form.holds`` (one pass over the array)."""
    return jnp.all(form.holds(weights, jnp.arange(weights.shape[0])))


def row_local_step(form: RowLocal, weights: Float[Array, "n ..."], state: State,
                   activity: Any) -> tuple[Float[Array, "n ..."], State, Bool[Array, ""]]:
    """One ``update`` through its row-local form: ``(weights, state, ok)``.

    Gathers the touched rows, runs ``form.update_rows`` on them (``activity.w_before`` set to
    ``weights``, as :func:`chain` does) and scatters them back. ``ok`` is false when a changed row
    no longer satisfies ``holds``: later row-local steps would then differ from ``update``, and
    the caller must redo its work with ``update`` (the engine checks ``ok`` once per epoch).
    """
    if form.touched is None:
        from .errors import ConfigError

        raise ConfigError("this row-local form names no touched rows (a transform alone); chain it after a rule")
    activity = activity._replace(w_before=weights)
    rows = form.touched(activity)
    new_rows, state = form.update_rows(_rows_of(weights, rows), state, activity, rows)
    real = rows < weights.shape[0]
    ok = jnp.all(form.holds(new_rows, rows) | ~real)
    return weights.at[rows].set(new_rows, mode="drop"), state, ok


def _compose_row_local(forms: tuple[RowLocal | None, ...]) -> RowLocal | None:
    """A chain's row-local form: every part has one and at least one names touched rows."""
    if not forms or any(f is None for f in forms) or all(f.touched is None for f in forms):
        return None
    touching = [f for f in forms if f.touched is not None]

    def touched(activity):
        if len(touching) == 1:
            return touching[0].touched(activity)
        rows = jnp.concatenate([f.touched(activity) for f in touching])
        first = jnp.argmax(rows[:, None] == rows[None, :], axis=1) == jnp.arange(rows.shape[0])
        return jnp.where(first, rows, jnp.iinfo(rows.dtype).max)  # each row once

    def update_rows(w_rows, state, activity, rows):
        new_state = []
        for f, s in zip(forms, state):
            w_rows, s = f.update_rows(w_rows, s, activity, rows)
            new_state.append(s)
        return w_rows, tuple(new_state)

    def holds(w_rows, rows):
        ok = forms[0].holds(w_rows, rows)
        for f in forms[1:]:
            ok = ok & f.holds(w_rows, rows)
        return ok

    return RowLocal(touched, update_rows, holds)


class LearningRule(NamedTuple):
    """An ``(init, update)`` pair of pure functions, plus an optional ``prepare``.

    Attributes:
        init, update, prepare: see the module docs.
        fast: a declared faster form (:class:`snnjax.deferred.DeferredTrace` or
            :class:`snnjax.deferred.DeferredRowDecay`) that an engine may run instead of
            ``prepare``/``update`` with the same results up to float rounding; ``None``: none.
            Whoever replaces ``update`` or ``prepare`` (``rule._replace``) must drop it.
        parts: for a :func:`chain`, its ``(name, rule)`` pairs in order; else ``None``.
        weight_range: a declared ``(low, high)``: from weights within it, ``update`` keeps them
            within it (e.g. a rule that clamps to its bounds); an engine may rely on it (the conv
            network's first-crossing training needs weights ≥ 0). ``None``: nothing declared; a
            :func:`chain` declares nothing. Whoever replaces ``update`` must drop it.
        row_local: a declared :class:`RowLocal` form (``update`` changes only a few rows); a
            :func:`chain` declares one when all its parts do. Whoever replaces ``update`` must drop it.
    """

    init: Callable[[Any], State]
    update: Callable[[Any, State, Activity], tuple[Any, State]]
    prepare: Callable[[Any, State, Activity], Any] = _identity_prepare
    fast: Any = None
    parts: tuple[tuple[str, LearningRule], ...] | None = None
    weight_range: tuple[float, float] | None = None
    row_local: RowLocal | None = None


def identity() -> LearningRule:
    """No plasticity: weights never change."""
    return LearningRule(lambda w: (), lambda w, s, a: (w, s))


def chain(*rules: LearningRule) -> LearningRule:
    """Compose rules and transforms left to right into one :class:`LearningRule`.

    The parts are named by their position (``"0"``, ``"1"``, ...); :func:`named_chain`
    takes the names. The state is the tuple of the children's states. ``prepare``
    runs the children's ``prepare`` in order; ``update`` threads the weights through
    each child's ``update``, with ``activity.w_before`` set to the weights at the
    start of the step.
    """
    if not rules:
        return identity()
    return named_chain(*((str(i), r) for i, r in enumerate(rules)))


def named_chain(*named_rules: tuple[str, LearningRule]) -> LearningRule:
    """:func:`chain` with named parts, e.g. ``named_chain(("stdp", stdp()), ("decay", use_it_or_lose_it()))``.

    The state is still the tuple of the parts' states (in order), so that a
    compiled program and a checkpoint do not depend on the names; address a part
    by name with :func:`part`, :func:`part_state` and :func:`replace_part_state`.
    """
    names = [n for n, _ in named_rules]
    if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
        from .errors import ConfigError

        raise ConfigError(f"chain part names must be distinct non-empty strings, got {names}")
    rules = tuple(r for _, r in named_rules)

    def init(weights):
        return tuple(r.init(weights) for r in rules)

    def prepare(weights, state, activity):
        for r, s in zip(rules, state):
            weights = r.prepare(weights, s, activity)
        return weights

    def update(weights, state, activity):
        activity = activity._replace(w_before=weights)
        new_state = []
        for r, s in zip(rules, state):
            weights, s = r.update(weights, s, activity)
            new_state.append(s)
        return weights, tuple(new_state)

    fast = compose_fast(tuple(r.fast for r in rules))
    return LearningRule(init, update, prepare, fast=fast, parts=tuple(named_rules),
                        row_local=_compose_row_local(tuple(r.row_local for r in rules)))


def chain_parts(rule: LearningRule) -> tuple[LearningRule, ...] | None:
    """The rules a :func:`chain` was made of, in order, or ``None`` if ``rule`` is not a chain."""
    parts = getattr(rule, "parts", None)
    return None if parts is None else tuple(r for _, r in parts)


def _part_index(rule: LearningRule, name: str) -> int:
    parts = getattr(rule, "parts", None) or ()
    for i, (n, _) in enumerate(parts):
        if n == name:
            return i
    from .errors import ConfigError

    raise ConfigError(f"this rule has no part named {name!r}; its parts: {[n for n, _ in parts] or 'none (not a chain)'}")


def part(rule: LearningRule, name: str) -> LearningRule:
    """The part of a chain called ``name`` (a :class:`~snnjax.errors.ConfigError` when there is none)."""
    return rule.parts[_part_index(rule, name)][1]


def part_state(rule: LearningRule, state: State, name: str) -> State:
    """The state of the part ``name`` inside a chain's ``state`` (batched states work unchanged)."""
    return state[_part_index(rule, name)]


def replace_part_state(rule: LearningRule, state: State, name: str, new: State) -> State:
    """A chain's ``state`` with the state of its part ``name`` replaced by ``new``."""
    i = _part_index(rule, name)
    return tuple(new if j == i else s for j, s in enumerate(state))


def for_each_event(mask: Bool[Array, " n"], first_idx, fn: Callable, carry, *, complete: bool = False):
    """Apply ``fn(idx, carry) -> carry`` to the events of ``mask`` in padded chunks.

    ``first_idx`` (length k, padded with ``len(mask)``) holds some of the events
    of ``mask`` (typically all of them); the rest are found with ``nonzero`` and
    processed k at a time in a ``lax.while_loop`` that normally runs zero times.
    Exact for any number of events. With ``complete=True`` (pass
    ``activity.idx_complete``) only ``first_idx`` is processed: no loop, which
    would make XLA copy the weights every step and select over them under ``vmap``.
    """
    n = mask.shape[0]
    k = first_idx.shape[0]
    carry = fn(first_idx, carry)
    if complete:
        return carry
    covered = jnp.zeros((n,), bool).at[first_idx].set(True, mode="drop")
    remaining = mask & ~covered

    def cond(c):
        return jnp.any(c[0])

    def body(c):
        rem, car = c
        idx = jnp.nonzero(rem, size=k, fill_value=n)[0].astype(first_idx.dtype)
        car = fn(idx, car)
        return rem.at[idx].set(False, mode="drop"), car

    _, carry = lax.while_loop(cond, body, (remaining, carry))
    return carry


def clip(low: float, high: float) -> LearningRule:
    """Hard bounds: ``w ← clip(w, low, high)`` after the preceding updates."""
    if not low < high:
        from .errors import ConfigError

        raise ConfigError(f"clip bounds need low < high, got low={low}, high={high}")
    return LearningRule(lambda w: (), lambda w, s, a: (jnp.clip(w, low, high), s),
                        row_local=RowLocal(None, lambda w, s, a, rows: (jnp.clip(w, low, high), s),
                                           lambda w, rows: unchanged_bits(jnp.clip(w, low, high), w)))


def clip_per_weight(low: Float[Array, "..."], high: Float[Array, "..."]) -> LearningRule:
    """Per-weight ranges: ``w_ij ← clip(w_ij, low_ij, high_ij)`` (e.g. Langevin ranges)."""
    low = jnp.asarray(low)
    high = jnp.asarray(high)

    def update_rows(w, s, a, rows):
        return jnp.clip(w, _rows_like(low, rows, w), _rows_like(high, rows, w)), s

    def holds(w, rows):
        return unchanged_bits(update_rows(w, (), None, rows)[0], w)

    return LearningRule(lambda w: (), lambda w, s, a: (jnp.clip(w, low, high), s),
                        row_local=RowLocal(None, update_rows, holds))


def freeze(mask: Bool[Array, "..."]) -> LearningRule:
    """Freeze the weights where ``mask`` is true: they keep their start-of-step value."""
    mask = jnp.asarray(mask, dtype=bool)

    def update(w, s, a):
        before = w if a.w_before is None else a.w_before
        return jnp.where(mask, before, w), s

    def update_rows(w, s, a, rows):  # an untouched row equals its start-of-step value: nothing to hold
        return jnp.where(_rows_like(mask, rows, w), _rows_of(a.w_before, rows), w), s

    return LearningRule(lambda w: (), update,
                        row_local=RowLocal(None, update_rows, lambda w, rows: jnp.ones((w.shape[0],), bool)))
