"""Presentations: one image (:func:`present`, :func:`present_raster`) or many — one after another
(:func:`present_many`) or each from the same state (:func:`present_each`).

An image's onset (threshold copy, normalisation), then its input phase and the
silent rest, each a ``lax.scan`` of steps on the path the rule allows
(:mod:`.deferred` or :mod:`.step`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from snnjax.errors import ConfigError, InputError
from snnjax.plasticity import LearningRule

from ..encoders import InputTable, check_image, raster_table, sample_table
from .config import RECORDABLE, NetworkConfig
from .deferred import _phase_lazy, _use_lazy
from .state import NetworkState, PresentationOutput
from .step import _input_drive, _phase_inference, _phase_reference

def _onset(st: NetworkState, cfg: NetworkConfig, fixed_v2_mv=None) -> NetworkState:
    exc, inh = st.exc, st.inh
    if cfg.reset_between_images:
        fresh_e = cfg.exc.init(cfg.n_exc, st.w.dtype)
        fresh_i = cfg.inh.init(cfg.n_inh, st.w.dtype)
        # adaptive thresholds persist (they are learned), everything else restarts
        exc = fresh_e._replace(vt=exc.vt, theta=exc.theta)
        inh = fresh_i
    if getattr(cfg.exc, "threshold_form", None) == "vt-copy":
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


def present_each(state: NetworkState, images, keys, cfg: NetworkConfig, rule: LearningRule, *, batch_size=None,
                 **kw) -> PresentationOutput:
    """Present every image of ``images`` (``[n, n_input]``) independently, each from ``state``, with ``keys[i]``.

    The parallel test of the thesis' protocol: no presentation sees another's state. The keyword
    arguments are those of :func:`present`. ``batch_size=None`` presents all ``n`` at once (``vmap``
    over the images); an integer presents that many at a time (``lax.map``: bounded memory, the same
    spikes). Returns the outputs stacked over the images (the states after each image are dropped).
    """

    def one(image, key):
        return present(state, image, key, cfg, rule, **kw)[1]

    if batch_size is None:
        return jax.vmap(one)(images, keys)
    return lax.map(lambda xk: one(*xk), (images, keys), batch_size=batch_size)


def segment_gates(segments, n_exc: int, n_classes: int, dtype) -> jnp.ndarray:
    """The label gates of a sequence of training images: row ``i`` is
    :func:`snnjax_plugins.rules.segment_gate` of ``segments[i]`` (``[n] → [n, n_exc]``), for
    :func:`present_many`'s ``gates``."""
    from ..rules import segment_gate

    return jax.vmap(lambda s: segment_gate(s, n_exc, n_classes, dtype))(segments)
