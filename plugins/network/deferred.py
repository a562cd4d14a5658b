"""The fast path: deferred on_post updates for a rule that declares a :class:`~snnjax.deferred.DeferredTrace`.

The maths (why the deferred sums equal the per-step rule up to float rounding) is
in :mod:`snnjax.deferred`; this module only asks the declared form for its
per-neuron pieces, and the chained row decay (if any) for its factor.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import lax

from snnjax.deferred import DeferredTrace, fast_form
from snnjax.errors import ConfigError
from snnjax.plasticity import LearningRule

from ..rules import decay_factor
from .config import NetworkConfig
from .state import NetworkState
from .step import _delayed_synapses, _integrate_and_threshold, _record, _reset_and_record, batch_any, write_rows

class _Block(NamedTuple):
    """Block-local bookkeeping of the deferred on_post updates (see :mod:`snnjax.deferred`).

    ``c[i]``: presynaptic trace of input ``i`` at its last flush, times ``e^{u_i·dt/τ}``;
    ``ul[i]``: block step ``u_i`` of that flush; ``P[j]``: Σ over this block's spikes of
    ``j`` of ``x_j·e^{−u·dt/τ}``; ``Ph[u]``: ``P`` at the start of block step ``u``;
    ``post``: the rule's postsynaptic traces (eager, per neuron). Arrays over inputs
    have one spare entry (index ``n_input``) that absorbs the padded list entries.
    With a chained row decay (:class:`~snnjax.deferred.DeferredRowDecay`): ``ts[i]``, the time (ms)
    of input ``i``'s last spike, and ``kp``, the decay strength; otherwise both ``None``.
    """

    c: jnp.ndarray
    ul: jnp.ndarray
    P: jnp.ndarray
    Ph: jnp.ndarray
    post: tuple
    ts: jnp.ndarray | None = None
    kp: jnp.ndarray | None = None


def _step_lazy(cfg: NetworkConfig, lz: DeferredTrace, rates, consts, st: NetworkState, b: _Block, u, in_idx, record=()):
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
            if ts is not None:  # the chained row decay (lazy use-it-or-lose-it), before transmission
                f = lz.row_decay.row_factor(t_ms, ts.at[idx].get(mode="promise_in_bounds"), b.kp, fdt)
                rows = rows * f[:, None]
                ts = write_rows(ts, idx, jnp.broadcast_to(t_ms, idx.shape).astype(ts.dtype))
            valid = idx < cfg.n_input
            # a sequential sum in list order (elementwise adds that XLA fuses; a reduce op here is
            # dispatched to a library kernel whose threading costs more than the sum itself)
            masked = jnp.where(valid[:, None], rows, 0)
            for r in range(masked.shape[0]):
                drive = drive + masked[r]
            rows = jnp.clip(rows + on_pre, lo, hi)
            w = write_rows(w, idx, rows)
            c = write_rows(c, idx, lz.pre_value(cc * eneg_u) * epos_u)
            ul = write_rows(ul, idx, jnp.broadcast_to(u, idx.shape))
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
        dec = lz.row_decay
        d1 = decay_factor(dt, tau, fdt)
        b = _Block(
            c=jnp.concatenate([apre * d1, jnp.zeros((1,), fdt)]),
            ul=jnp.zeros((n_in + 1,), jnp.int32),
            P=jnp.zeros((cfg.n_exc,), fdt),
            Ph=jnp.zeros((R, cfg.n_exc), fdt),
            post=post,
            ts=None if reg is None else jnp.concatenate([dec.times(reg), jnp.zeros((1,), dec.times(reg).dtype)]),
            kp=None if reg is None else jnp.asarray(dec.strength(reg), fdt),
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
        reg = None if reg is None else dec.with_times(reg, b.ts[:n_in])
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


def _use_lazy(cfg: NetworkConfig, rule: LearningRule) -> DeferredTrace | None:
    """The rule's declared fast form when ``cfg.plasticity`` allows the fast path, else ``None``."""
    if cfg.plasticity == "reference":
        return None
    lz = fast_form(rule)
    if lz is None and cfg.plasticity == "lazy":
        raise ConfigError("plasticity='lazy' needs a rule that declares a deferred form (rule.fast: stdp, all-ltd, "
                          "segment-supervised with trace rules, stdp-dc15, or a plugin's DeferredTrace), alone or "
                          "chained with a lazy use-it-or-lose-it; use plasticity='auto' or 'reference'")
    return lz
