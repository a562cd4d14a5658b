"""One time step of the network, Brian 2's schedule: the pieces shared by every path, the general plasticity path
(the rule's ``prepare``/``update`` every step) and the inference path (no plasticity).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_batching import custom_vmap

from snnjax.plasticity import Activity, LearningRule

from .config import NetworkConfig
from .state import NetworkState

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


@custom_vmap
def write_rows(x, idx, values):
    """``x`` with ``x[idx[r]] = values[r]``, one ``r`` after another (``idx``: ``int32[k]``, in bounds).

    Written as ``k`` dynamic-update-slices, not a scatter: XLA's CPU backend compiles a loop
    that holds no scatter as one function (``snnjax.xla_options``), without a dispatch per
    kernel. Under ``vmap`` (indices per seed) it is one scatter, which is faster there than
    ``k`` batched updates. Equal values wherever ``idx`` has no repeats; a repeated index
    keeps one of its values (the padded entries of an event list all point to a spare row).
    """
    for r in range(idx.shape[0]):
        x = lax.dynamic_update_index_in_dim(x, values[r], idx[r], 0)
    return x


def _all_batched(axis_size, in_batched, *args):
    """``args`` with the unbatched ones broadcast along a leading axis of ``axis_size`` (in a ``custom_vmap`` rule)."""
    return tuple(a if b else jnp.broadcast_to(a, (axis_size,) + jnp.shape(a)) for a, b in zip(args, in_batched, strict=True))


@write_rows.def_vmap
def _write_rows_vmap(axis_size, in_batched, x, idx, values):
    x, idx, values = _all_batched(axis_size, in_batched, x, idx, values)
    return jax.vmap(lambda x, i, v: x.at[i].set(v, mode="promise_in_bounds"))(x, idx, values), True


def first_true(mask, k: int):
    """The indices of the first ``k`` true entries of ``mask`` (``bool[n]``), padded with ``n``: ``int32[k]``.

    ``jnp.nonzero(mask, size=k, fill_value=n)`` without its scatter (see :func:`write_rows`):
    entry ``r`` is the number of positions before the ``(r+1)``-th true one.
    """
    seen = jnp.cumsum(mask, dtype=jnp.int32)
    return jnp.sum(seen[None, :] <= jnp.arange(k, dtype=jnp.int32)[:, None], axis=1, dtype=jnp.int32)


@custom_vmap
def add_per_column(buf, rows, value):
    """``buf`` with ``value`` added at ``buf[rows[r, j], j]`` for every ``r`` and column ``j`` (``rows``: ``int32[k, n]``).

    Written as ``k`` masked adds over ``buf`` (no scatter, so that XLA's CPU backend can compile
    the loop around it as one function; see :func:`write_rows`); under ``vmap`` one scatter-add.
    The same values as the scatter-add: every addend is ``value``, so their order does not matter.
    """
    pos = jnp.arange(buf.shape[0], dtype=rows.dtype)[:, None]
    for r in range(rows.shape[0]):
        buf = buf + jnp.where(pos == rows[r][None, :], value, jnp.zeros((), buf.dtype))
    return buf


@add_per_column.def_vmap
def _add_per_column_vmap(axis_size, in_batched, buf, rows, value):
    buf, rows, value = _all_batched(axis_size, in_batched, buf, rows, value)

    def one(buf, rows, value):
        cols = jnp.broadcast_to(jnp.arange(buf.shape[1])[None, :], rows.shape)
        return buf.at[rows, cols].add(value, mode="promise_in_bounds")

    return jax.vmap(one)(buf, rows, value), True


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
            inh_idx = first_true(si, cfg.k_inh)
            valid = inh_idx < cfg.n_inh
            dd = jnp.take(st.d3, jnp.minimum(inh_idx, cfg.n_inh - 1), axis=0)
            rows = jnp.where(valid[:, None] & (dd >= 0), (n + dd) % cfg.ring3, cfg.ring3)
            return add_per_column(buf3, rows.astype(jnp.int32), w_ie)

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
    # the lists are complete for the rule: events beyond them are counted (post_drop, the input table's count)
    act = Activity(pre=in_mask, post=se, t_ms=n.astype(fdt) * cfg.dt_ms, dt_ms=cfg.dt_ms, gain=learn, gate=gate,
                   pre_idx=in_idx, post_idx=post_idx, idx_complete=True)
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


def _phase_reference(cfg, rule, learn, gate, carry, table, n_steps, record):
    def body(c, idx):
        st, ce, ci, drop = c
        if idx is None:
            idx = jnp.zeros((0,), jnp.int32)
        st, se, si, d, rec = _step_reference(cfg, rule, learn, gate, st, idx, record)
        return (st, ce + se, ci + si, drop + d), rec

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
