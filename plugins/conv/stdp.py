"""Learning rules of convolutional STDP networks: SpykeTorch STDP and reward-modulated STDP.

Both are :class:`snnjax.plasticity.LearningRule` ``(init, update)`` pairs of pure functions (like an
optax transformation; ``update`` returns the new weights), with their learning-rate schedules in
the state, so they compose with :func:`snnjax.plasticity.chain` (``freeze``, ``clip_per_weight``...):

* ``init(weight) -> state``
* ``update(weight, state, activity: ConvActivity) -> (new_weight, new_state)``

:class:`ConvActivity` carries ``spk_in`` (the layer's padded input wave ``(T, C, H, W)``),
``spk_out`` (its output spikes ``(T, F, H', W')`` after inhibition), ``winners`` (a
:class:`~.inhibition.Winners` or a ``(k, 3)`` int array; rows with a negative feature are
ignored) and, for R-STDP, ``decision`` (−1 = silence) and ``label``.

The update itself (:func:`stdp_update`) is SpykeTorch's: only winners' kernels change; the pairing
of a winner ``(f, r, c)`` is ``Σ_t in[:, r:r+kh, c:c+kw] >= Σ_t out[f, r, c]`` (input no later than
the winner, simultaneous included → LTP, else LTD); a later winner of the same feature overwrites
an earlier one; ``Δw = a·(w−lb)·(ub−w)`` with the stabilizer, ``Δw = a`` without; then the weights
are clamped to ``[lb, ub]`` — **all** of them (``clamp_all=True``, faithful: this also clips
features that had no winner) or only the kernels that were updated (``clamp_all=False``).

Both rules declare a :class:`snnjax.plasticity.RowLocal` form: a step changes only the winners'
kernels (:func:`winner_kernels`, updated by :func:`stdp_update_rows`) when every other kernel is a
fixed point of the clamp (:func:`untouched_kernels_hold`: within ``[lb, ub]``), so an engine may
update one kernel of 200 instead of all of them, with the same bits.
"""

from __future__ import annotations

import functools

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from snnjax.errors import ConfigError, InputError
from snnjax.plasticity import LearningRule, RowLocal, unchanged_bits

from .inhibition import Winners


class ConvActivity(NamedTuple):
    """What a conv rule sees for one image (see the module docstring)."""

    spk_in: jax.Array
    spk_out: jax.Array
    winners: Any
    decision: Any = -1  #: R-STDP only: the network's decision, −1 = silence
    label: Any = -1  #: R-STDP only: the true class
    gain: Any = 1.0  #: learning gain (0 switches learning off)
    w_before: Any = None  #: filled by :func:`snnjax.plasticity.chain`


def _winner_array(winners) -> jax.Array:
    if isinstance(winners, Winners):
        return jnp.where(winners.valid[:, None], winners.index, -1)
    w = jnp.asarray(winners, jnp.int32)
    if w.ndim != 2 or w.shape[-1] != 3:
        raise InputError(f"winners must be a (k, 3) array of (feature, row, col), got shape {w.shape}")
    return w


def _count_over_time(spikes: jax.Array) -> jax.Array:
    """``Σ_t spikes[t]`` as float32, written as ``T − 1`` elementwise adds: spike counts are exact in
    any order, and adds fuse into the loop around them where a reduction would be a library call."""
    x = spikes.astype(jnp.float32)
    total = x[0]
    for t in range(1, x.shape[0]):
        total = total + x[t]
    return total


@functools.partial(jax.jit, static_argnames=('kernel_size',))
def stdp_pairings(spk_in: jax.Array, spk_out: jax.Array, winners, kernel_size: tuple[int, int]) -> jax.Array:
    """``(k, C, kh, kw)`` bool: input count ``>=`` winner's output count over each winner's receptive field."""
    win = _winner_array(winners)
    kh, kw = kernel_size
    in_cnt, out_cnt = _count_over_time(spk_in), _count_over_time(spk_out)

    def one(row):
        f, r, c = jnp.maximum(row, 0)
        field = lax.dynamic_slice(in_cnt, (0, r, c), (in_cnt.shape[0], kh, kw))
        return field >= out_cnt[f, r, c]

    return jax.vmap(one)(win)


def _feature_rates(n_feat: int, kernel: tuple[int, int], spk_in, spk_out, winners, a_ltp, a_ltd, dtype):
    """Per winner its ``(C, kh, kw)`` rates, per feature the winner that counts (the last) and
    whether it has one: ``(per_win (k, C, kh, kw), last (F,), has (F,))``."""
    win = _winner_array(winners)
    pair = stdp_pairings(spk_in, spk_out, win, kernel)  # (k, C, kh, kw)
    a_ltp = jnp.broadcast_to(jnp.asarray(a_ltp, dtype), (n_feat,))
    a_ltd = jnp.broadcast_to(jnp.asarray(a_ltd, dtype), (n_feat,))
    feat = win[:, 0]
    fsafe = jnp.maximum(feat, 0)
    per_win = jnp.where(pair, a_ltp[fsafe][:, None, None, None], a_ltd[fsafe][:, None, None, None])
    k = win.shape[0]
    match = (feat[None, :] == jnp.arange(n_feat)[:, None]) & (feat[None, :] >= 0)  # (F, k)
    last = k - 1 - jnp.argmax(match[:, ::-1], axis=1)  # last winner of each feature
    return per_win, last, jnp.any(match, axis=1)


def _step_kernels(weight, rate, lb: float, ub: float, stabilizer: bool):
    """``clip(w + a·(w−lb)·(ub−w), lb, ub)`` (or ``clip(w + a)``) elementwise, unclamped and clamped."""
    lb_ = jnp.asarray(lb, weight.dtype)
    ub_ = jnp.asarray(ub, weight.dtype)
    if stabilizer:
        delta = rate * ((weight - lb_) * (ub_ - weight))
        # the select keeps XLA/LLVM from contracting the multiply-add into an FMA (one rounding
        # fewer than the original) so jitted updates stay bit-identical to SpykeTorch; it only
        # changes a NaN increment into 0
        new = weight + jnp.where(delta == delta, delta, jnp.zeros((), delta.dtype))
    else:
        new = weight + rate
    return jnp.clip(new, lb_, ub_)


@functools.partial(jax.jit, static_argnames=('lb', 'ub', 'stabilizer', 'clamp_all'))
def stdp_update(
    weight: jax.Array, spk_in: jax.Array, spk_out: jax.Array, winners, a_ltp: jax.Array, a_ltd: jax.Array,
    *, lb: float = 0.0, ub: float = 1.0, stabilizer: bool = True, clamp_all: bool = True,
) -> jax.Array:
    """One SpykeTorch STDP step on conv weights ``(F, C, kh, kw)``; ``a_ltp``/``a_ltd`` are per feature ``(F,)`` or scalars."""
    if weight.ndim != 4:
        raise InputError(f"conv weight must be (out, in, kh, kw), got shape {weight.shape}")
    per_win, last, has = _feature_rates(weight.shape[0], weight.shape[2:], spk_in, spk_out, winners, a_ltp, a_ltd,
                                        weight.dtype)
    rate = jnp.where(has[:, None, None, None], per_win[last], jnp.zeros((), weight.dtype))
    clamped = _step_kernels(weight, rate, lb, ub, stabilizer)
    if clamp_all:
        return clamped
    return jnp.where(has[:, None, None, None], clamped, weight)


def winner_kernels(n_feat: int, winners) -> jax.Array:
    """The kernels one :func:`stdp_update` changes: each winner's feature once (its last winner),
    padded with ``n_feat`` — the touched rows of the rules' :class:`~snnjax.plasticity.RowLocal` form."""
    feat = _winner_array(winners)[:, 0]
    later = jnp.triu(feat[:, None] == feat[None, :], k=1)  # (i, j): j > i names the same feature
    counts = (feat >= 0) & (feat < n_feat) & ~jnp.any(later, axis=1)
    return jnp.where(counts, feat, n_feat)


def stdp_update_rows(
    kernels: jax.Array, rows: jax.Array, n_feat: int, spk_in: jax.Array, spk_out: jax.Array, winners,
    a_ltp: jax.Array, a_ltd: jax.Array, *, lb: float = 0.0, ub: float = 1.0, stabilizer: bool = True,
    clamp_all: bool = True,
) -> jax.Array:
    """:func:`stdp_update` on the kernels ``rows`` only (``kernels = weight[rows]``, ``(k, C, kh, kw)``),
    bit for bit: what the full update makes of those kernels."""
    per_win, last, has = _feature_rates(n_feat, kernels.shape[2:], spk_in, spk_out, winners, a_ltp, a_ltd,
                                        kernels.dtype)
    has_r = has.at[rows].get(mode="fill", fill_value=False)[:, None, None, None]
    rate = jnp.where(has_r, per_win[last.at[rows].get(mode="fill", fill_value=0)], jnp.zeros((), kernels.dtype))
    clamped = _step_kernels(kernels, rate, lb, ub, stabilizer)
    return clamped if clamp_all else jnp.where(has_r, clamped, kernels)


def untouched_kernels_hold(kernels: jax.Array, *, lb: float, ub: float, stabilizer: bool,
                           clamp_all: bool) -> jax.Array:
    """Per kernel, whether :func:`stdp_update` leaves it bit for bit as it is when no winner names
    it (with ``clamp_all`` it is clamped: true when it lies within ``[lb, ub]``)."""
    if not clamp_all:
        return jnp.ones((kernels.shape[0],), bool)
    return unchanged_bits(_step_kernels(kernels, jnp.zeros((), kernels.dtype), lb, ub, stabilizer), kernels)


def winners_row_local(update_rows, bounds: dict) -> RowLocal:
    """The :class:`~snnjax.plasticity.RowLocal` form of a rule built on :func:`stdp_update`: a step
    touches its winners' kernels (:func:`winner_kernels`) and leaves the others as they are while
    :func:`untouched_kernels_hold` (``bounds``: the update's ``lb``, ``ub``, ``stabilizer``, ``clamp_all``)."""
    return RowLocal(lambda a: winner_kernels(a.w_before.shape[0], a.winners), update_rows,
                    lambda kernels, rows: untouched_kernels_hold(kernels, **bounds))


class STDPState(NamedTuple):
    """Per-feature learning rates and the image counter of the doubling schedule."""

    a_ltp: jax.Array
    a_ltd: jax.Array
    count: jax.Array


def spyketorch_stdp(
    a_plus: float = 0.004, a_minus: float = -0.003, lb: float = 0.0, ub: float = 1.0, stabilizer: bool = True,
    clamp_all: bool = True, schedule_every: int | None = 500, max_a_plus: float = 0.15, ltd_ratio: float = -0.75,
) -> LearningRule:
    """SpykeTorch STDP for conv layers (winners only, stabilizer, clamp) with the a+ doubling schedule."""
    if lb >= ub:
        raise ConfigError(f"STDP bounds need lb < ub, got [{lb}, {ub}]")
    if schedule_every is not None and schedule_every <= 0:
        raise ConfigError(f"schedule_every must be a positive integer or None, got {schedule_every!r}")

    def init(weight: jax.Array) -> STDPState:
        n = weight.shape[0]
        return STDPState(jnp.full((n,), a_plus, jnp.float32), jnp.full((n,), a_minus, jnp.float32), jnp.zeros((), jnp.int32))

    def scheduled(state: STDPState) -> STDPState:
        a_ltp, a_ltd, count = state
        if schedule_every is not None:
            # the original counts the image before its STDP step: the N-th image already uses the new rate
            count = count + 1
            hit = count >= schedule_every
            ap = jnp.minimum(a_ltp[0] * 2, jnp.float32(max_a_plus))
            an = ap * jnp.float32(ltd_ratio)
            a_ltp = jnp.where(hit, jnp.full_like(a_ltp, ap), a_ltp)
            a_ltd = jnp.where(hit, jnp.full_like(a_ltd, an), a_ltd)
            count = jnp.where(hit, 0, count)
        return STDPState(a_ltp, a_ltd, count)

    bounds = dict(lb=lb, ub=ub, stabilizer=stabilizer, clamp_all=clamp_all)

    def update(weight, state: STDPState, activity: ConvActivity):
        state = scheduled(state)
        return stdp_update(weight, activity.spk_in, activity.spk_out, activity.winners, state.a_ltp, state.a_ltd,
                           **bounds), state

    def update_rows(kernels, state: STDPState, activity: ConvActivity, rows):
        state = scheduled(state)
        return stdp_update_rows(kernels, rows, activity.w_before.shape[0], activity.spk_in, activity.spk_out,
                                activity.winners, state.a_ltp, state.a_ltd, **bounds), state

    # the update clamps to [lb, ub]
    return LearningRule(init, update, weight_range=(float(lb), float(ub)),
                        row_local=winners_row_local(update_rows, bounds))


class RSTDPState(NamedTuple):
    """Current reward and punishment rates and the counters of the running batch."""

    reward: jax.Array  #: (2,) (a_ltp, a_ltd) used after a correct decision
    punish: jax.Array  #: (2,) (a_ltp, a_ltd) used after a wrong decision
    correct: jax.Array
    wrong: jax.Array
    seen: jax.Array


def r_stdp(
    reward: tuple[float, float] = (0.004, -0.003), punish: tuple[float, float] = (-0.004, 0.0005),
    lb: float = 0.2, ub: float = 0.8, stabilizer: bool = False, clamp_all: bool = True,
    adaptive: bool = True, adaptive_int: float = 1.0, adaptive_min: float = 0.0, batch_size: int = 1000,
) -> LearningRule:
    """Reward-modulated STDP (Mozafari 2019): STDP if correct, anti-STDP if wrong, nothing on silence."""
    if lb >= ub:
        raise ConfigError(f"R-STDP bounds need lb < ub, got [{lb}, {ub}]")
    if batch_size <= 0:
        raise ConfigError(f"batch_size must be positive, got {batch_size!r}")
    r0 = jnp.asarray(reward, jnp.float32)
    p0 = jnp.asarray(punish, jnp.float32)

    def init(weight: jax.Array | None = None) -> RSTDPState:
        z = jnp.zeros((), jnp.int32)
        return RSTDPState(r0, p0, z, z, z)

    def rates_and_state(state: RSTDPState, activity: ConvActivity):
        decision, label = jnp.asarray(activity.decision), jnp.asarray(activity.label)
        silent = decision < 0
        good = (~silent) & (decision == label)
        bad = (~silent) & (decision != label)
        rates = jnp.where(good, state.reward, state.punish)
        correct = state.correct + good.astype(jnp.int32)
        wrong = state.wrong + bad.astype(jnp.int32)
        seen = state.seen + 1
        rew, pun = state.reward, state.punish
        if adaptive:
            end = seen >= batch_size
            c_rate = correct.astype(jnp.float32) / seen.astype(jnp.float32)
            w_rate = wrong.astype(jnp.float32) / seen.astype(jnp.float32)
            rew = jnp.where(end, r0 * (w_rate * adaptive_int + adaptive_min), rew)
            pun = jnp.where(end, p0 * (c_rate * adaptive_int + adaptive_min), pun)
            zero = jnp.zeros((), jnp.int32)
            correct = jnp.where(end, zero, correct)
            wrong = jnp.where(end, zero, wrong)
            seen = jnp.where(end, zero, seen)
        return rates, silent, RSTDPState(rew, pun, correct, wrong, seen)

    bounds = dict(lb=lb, ub=ub, stabilizer=stabilizer, clamp_all=clamp_all)

    def update(weight, state: RSTDPState, activity: ConvActivity):
        rates, silent, state = rates_and_state(state, activity)
        new = stdp_update(weight, activity.spk_in, activity.spk_out, activity.winners, rates[0], rates[1], **bounds)
        return jnp.where(silent, weight, new), state

    def update_rows(kernels, state: RSTDPState, activity: ConvActivity, rows):
        rates, silent, state = rates_and_state(state, activity)
        new = stdp_update_rows(kernels, rows, activity.w_before.shape[0], activity.spk_in, activity.spk_out,
                               activity.winners, rates[0], rates[1], **bounds)
        return jnp.where(silent, kernels, new), state

    return LearningRule(init, update, row_local=winners_row_local(update_rows, bounds))
