"""Langevin ranges of the ``continual`` experiment: noisy task-1 epochs of one layer whose
weights feed a streaming per-weight quantile estimator (P², bounded memory).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from snnjax.errors import ConfigError
from snnjax.quantiles import quantiles_estimate, quantiles_init, quantiles_update

from ... import continual_transforms as methods
from ...conv import pipeline as P
from ...conv.stdp import ConvActivity
from .config import CONV_LAYERS, TASK1_DECISION_TAG, langevin_probabilities


def epoch_parts(blocks: int, every: int, chunk_images: int) -> tuple[int, int]:
    """How a noisy epoch of ``blocks`` blocks of ``every`` images is cut into chunks of the run's loop.

    Returns ``(per, parts)``: ``parts`` chunks of ``per`` blocks each (the last one may hold fewer),
    ``per = ⌊chunk_images / every⌋`` clipped to ``[1, blocks]``; ``chunk_images = 0`` keeps the epoch
    whole (``per = blocks``, one part). A part ends with a checkpoint and a progress line; the images,
    their order, the noise and so every result are the same for any cut.
    """
    per = blocks if chunk_images == 0 else max(1, min(blocks, chunk_images // every))
    return per, -(-blocks // per)


def _langevin_ranges(loop, pipe: P.ConvPipeline, cfg, keys, w, st, step, bounds, program, tag, lat_train, y_train,
                     evaluate, phase: str):
    """Noisy task-1 epochs of one layer, recording its weights.

    ``step(w, st, latency, label) -> (w, st, decision)`` trains the layer on one image
    (``decision = -1``: no update, so no noise); after it ``σ·N(0, 1)`` is added to every weight of
    the layer, clamped to ``bounds``. The weights after the update, before the noise, of every
    ``langevin_every``-th image feed the streaming quantile estimator. ``evaluate(w) -> (S,)``
    gives the task-1 test accuracy of the network with the layer's weights ``w`` (per seed).

    Returns ``(quantiles [n_probs, S, *w.shape], task-1 accuracy per epoch [S, langevin_epochs])``,
    the quantiles in the order of :func:`langevin_probabilities`: every Langevin arm of the run (e.g.
    Q1/Q3 and D10/D90) reads its range from the same noisy trajectory. With ``langevin_stop`` a
    seed whose accuracy falls below it keeps the state of the epoch before (its first epoch is
    always kept) and takes no further epochs; its later accuracies are NaN (so the epochs it kept
    are the non-NaN ones). The epochs are phase ``phase`` of the run's ``loop``, each epoch cut into
    parts of about ``langevin_chunk_images`` images (:func:`epoch_parts`; one chunk each,
    checkpointed with the estimator's state; a stopped seed's later chunks, and every chunk once all
    seeds stopped, change nothing). With several parts per epoch the carry also holds the state at
    the epoch's start, for the stop rule (twice the memory and checkpoint of one part per epoch).
    Once the epochs are done the checkpoint keeps only the quantiles and the accuracies (the
    markers of 4 quantiles of a 4-seed decision layer are 800 MB).
    """
    every, sigma, stop = int(cfg["langevin_every"]), float(cfg["langevin_sigma"]), float(cfg["langevin_stop"])
    probs = langevin_probabilities(cfg)
    noise = methods.langevin_noise(jax.random.PRNGKey(0), sigma, *bounds)  # the key lives in the carried state
    shared = lat_train.ndim == 4
    n = int(lat_train.shape[0 if shared else 1])
    blocks = n // every  # blocks of `every` images in an epoch, one quantile snapshot each
    if blocks < 1:
        raise ConfigError(f"langevin_every={every} exceeds the {n} task-1 training images of the noisy epochs")
    per, parts = epoch_parts(blocks, every, int(cfg["langevin_chunk_images"]))

    def one(count, key, nkey, w, st, qs, cache, labels, first):
        """Blocks ``first … first + count − 1`` of the epoch's image order (``key``)."""
        order = jax.random.permutation(key, n)[: blocks * every].reshape(blocks, every)
        if count < blocks:
            order = jax.lax.dynamic_slice_in_dim(order, first, count)

        def inner(carry, idx):
            w, st, nk, _ = carry
            w_mid, st, decision = step(w, st, cache[idx], labels[idx])
            w, nk = noise.update(w_mid, nk, ConvActivity(None, None, None, decision))
            return (w, st, nk, w_mid), None

        def outer(carry, idxs):
            w, st, nk, qs = carry
            (w, st, nk, w_mid), _ = jax.lax.scan(inner, (w, st, nk, w), idxs)
            return (w, st, nk, quantiles_update(qs, w_mid, probs)), None

        (w, st, nk, qs), _ = jax.lax.scan(outer, (w, st, nkey, qs), order)
        return nk, w, st, qs

    programs: dict[int, object] = {}  # blocks per part -> program (the last part of an epoch may be shorter)

    def noisy_part(count, *args):
        if count not in programs:
            programs[count] = loop.batched(partial(one, count), shared=(5, 6, 7) if shared else (6, 7),
                                           name=f"langevin-{program}")
        return programs[count](*args)

    S, E = keys.shape[0], cfg["langevin_epochs"]
    lat_train, y_train = jnp.asarray(lat_train), jnp.asarray(y_train, jnp.int32)

    estimate = loop.batched(lambda q: jnp.stack(quantiles_estimate(q, probs)), name="quantiles_estimate")

    def chunk(c, carry):
        # carry: (*state, *epoch_start, acc, active, estimates); epoch_start only with several parts
        e, p = divmod(c, parts)
        state, begin = tuple(carry[:4]), tuple(carry[4:-3])
        acc, active, estimates = carry[-3:]
        active = np.asarray(active)
        if active.any():  # else every seed has stopped
            if p == 0:
                begin = state
            count = min(per, blocks - p * per)
            state = tuple(noisy_part(count, loop.fold(keys, tag + 1, e), *state, lat_train, y_train,
                                     jnp.int32(p * per)))
            if p == parts - 1:  # the epoch is done: the stop rule
                got = np.asarray(evaluate(state[1]))
                active = active & ((got >= stop) | (e == 0))
                acc = np.array(acc)
                acc[active, e] = got[active]
                state = tuple(jax.tree.map(lambda a, b: jnp.where(active.reshape((S,) + (1,) * (a.ndim - 1)), a, b),
                                           state, begin))
        if c == E * parts - 1:
            estimates = estimate(state[3])
        return (*state, *(begin if parts > 1 else ()), acc, active, estimates)

    qs = loop.batched(lambda w: quantiles_init(w.shape, probs), name="quantiles_init")(w)
    state = (loop.fold(keys, tag, 0), w, st, qs)
    carry = (*state, *(state if parts > 1 else ()), np.full((S, E), np.nan), np.ones(S, bool),
             jnp.zeros((S, len(probs)) + tuple(w.shape[1:]), jnp.float32))
    unit = "noisy task-1 epochs" if parts == 1 else f"noisy task-1 epoch parts ({per * every} images)"
    # once the epochs are done the run keeps the ranges and accuracies, not the estimator's markers
    estimates, acc = loop.phase(phase, E * parts, chunk, carry, unit=unit, keep=lambda c: (c[-1], c[-3]))
    return jnp.moveaxis(estimates, 0, 1), np.asarray(acc)


def _layer_langevin(loop, pipe: P.ConvPipeline, cfg, keys, layer: str, state: P.NetState, w3, st3, lat_t1, lat2_t1,
                    n1, n_stdp1, y1, yt1, phase: str):
    """:func:`_langevin_ranges` of one layer (``conv1``, ``conv2`` or ``decision``) after task 1.

    ``decision``: R-STDP with the rates fixed on the task-1 features, noise after every
    reward/punish update, clamped to [0.2, 0.8] (the thesis). With ``langevin_epoch0_adaptive_int``
    ``a > 0`` the layer first trains one noise-free R-STDP epoch on the same images (the thesis'
    epoch 0; its image order is task 1's next decision epoch's), whose rates adapt with ``a``
    (reward rates ``r0·a·wrong``, punishment rates ``p0·a·correct``, the fractions over each
    ``rstdp_batch``); the noisy epochs start from its weights and keep the rates it ended with.
    With ``a = 0`` they start from the task-1 weights at the rates task 1 ended with. ``conv1`` /
    ``conv2``: STDP (its state carried over from task 1) on the task-1 STDP images, noise after
    every image, clamped to [lb, ub] of the STDP rule; the other layers keep their task-1 weights,
    and the stop rule's accuracy is the whole network's with the noisy layer (features recomputed).
    """
    if layer == "decision":
        train, evaluate = lat2_t1[:, :n1], lambda w: pipe.evaluate(w, lat2_t1[:, n1:], yt1).accuracy  # noqa: E731
        adaptive_int, accuracy0 = float(cfg["langevin_epoch0_adaptive_int"]), None
        if adaptive_int > 0:
            def epoch0(_, carry):
                w, st, _ = carry
                key = loop.fold(keys, TASK1_DECISION_TAG, int(cfg["epochs3"]))  # task 1's next epoch
                w, st, _ = pipe.decision_epoch(key, w, st, train, y1,
                                               make_rule=lambda: pipe.rstdp_rule(adaptive_int=adaptive_int),
                                               name=f"langevin-epoch0-{adaptive_int}")
                return w, st, np.asarray(evaluate(w))

            w3, st3, accuracy0 = loop.phase(f"{phase}-epoch0", 1, epoch0, (w3, st3, np.zeros(keys.shape[0])),
                                            unit="noise-free epoch 0")
        step = pipe.decision_step(pipe.rstdp_rule(adaptive=False))  # the rates stay as they are
        return (*_langevin_ranges(loop, pipe, cfg, keys, w3, st3, step, (0.2, 0.8), "decision", 40, train, y1,
                                  evaluate, phase), accuracy0)
    index = CONV_LAYERS.index(layer)
    stdp = pipe.layer_step(index, pipe.stdp)
    step = lambda w, st, lat, label: (*stdp(w, st, lat), jnp.int32(0))  # noqa: E731  (every image updates)
    bounds = (pipe.stdp_params.get("lb", 0.0), pipe.stdp_params.get("ub", 1.0))
    train, test = lat_t1[:n_stdp1], lat_t1[n1:]
    if index == 0:
        evaluate = lambda w: pipe.evaluate(w3, pipe.features(w, state.w2, test), yt1).accuracy  # noqa: E731
        w, st = state.w1, state.st1
    else:
        train, test = pipe.propagate(0, state.w1, train), pipe.propagate(0, state.w1, test)
        evaluate = lambda w: pipe.evaluate(w3, pipe.propagate(1, w, test), yt1).accuracy  # noqa: E731
        w, st = state.w2, state.st2
    return (*_langevin_ranges(loop, pipe, cfg, keys, w, st, step, bounds, layer, 42 + 2 * index, train,
                              np.zeros(len(train) if train.ndim == 4 else train.shape[1], np.int32), evaluate, phase),
            None)
