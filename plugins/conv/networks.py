"""Convolutional STDP networks: Mozafari et al. 2019 (R-STDP decision layer) and Kheradpisheh et al. 2018.

Layer-wise training on cached spike waves:

* A cumulative spike wave ``(T, C, H, W)`` is stored exactly and compactly as its first-spike
  step map ``(C, H, W)`` ``uint8`` (``T`` = never; see :mod:`.frontend`). The DoG front end is run
  once per dataset (:meth:`~.frontend.DogLatencyEncoder.latency_batch`); after a layer is trained
  and frozen, :func:`layer_outputs` runs it once over the dataset and caches its pooled output
  the same way. Training the next layer scans over those caches: no earlier layer is recomputed.
* Conv potentials of non-negative weights on cumulative waves are non-decreasing in time, so
  thresholded spikes are cumulative too and the cache is exact (weights live in ``[lb, ub]``
  with ``lb >= 0``; the N(0.8, 0.05) initial weights are positive in practice).
* :func:`train_layer` is one ``lax.scan`` over the (shuffled) images of one epoch, pure in
  ``(key, weight, rule_state, cache)``: ``jax.vmap`` over seeds batches several runs (seeds
  differ in the initial weights and in the image order).

The per-image recipe is MozafariDeep's: pad → conv → fire(θ) → pointwise inhibition → sign →
k-winners(k, r) → STDP with the padded input. ``conv_impl`` chooses how the STDP layers compute it:
``"dot"`` (default; the potentials of all ``T`` steps from the first-spike map,
:func:`~.layers.conv_latency`), ``"nhwc"`` (XLA's channels-last convolution of the wave) or
``"events"`` (training steps from each position's first crossing only, :mod:`.events`; inference
as ``"dot"``). All three agree to float32 rounding; ``"dot"`` is the rounding of every stored
result. The decision layer ("no threshold") only needs its last-step potentials, so it is computed
on the last step of its input wave only (exactly the same winner and update as the full computation).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from snnjax.errors import ConfigError, InputError
from snnjax.plasticity import row_local_step

from . import frontend
from .inhibition import (KWinnersTakeAll, Winners, check_k_radius, last_step_winner, pointwise_inhibition,
                         pointwise_k_winners, winners_of)
from .events import first_spike_k_winners, patch_latencies
from .layers import conv, conv_latency, fire, pad, pool
from .stdp import ConvActivity, LearningRule


class ConvLayerSpec(NamedTuple):
    """Static description of one conv layer (hashable; pass as a static argument)."""

    in_maps: int
    out_maps: int
    kernel: int
    threshold: float | None  #: None = "no threshold" (decision layer)
    k: int = 1
    radius: int = 0
    pad_in: int = 0  #: zero padding of the input wave before the conv
    pool: tuple[int, int, int] | None = None  #: (kernel, stride, padding) after fire
    pointwise_input: bool = False  #: pointwise inhibition on the *input* wave while training (Kheradpisheh quirk)
    w_mean: float = 0.8
    w_std: float = 0.05
    #: :func:`~.layers.conv` implementation: ``"dot"`` (the reference rounding), ``"nhwc"`` (XLA's
    #: channels-last convolution: faster on CPU; potentials differ in float32 rounding, ≈ 1e-6 relative)
    #: or ``"events"`` (training steps from the first crossings of each position, :mod:`.events`: 3×
    #: fewer multiply-adds, needs weights ≥ 0, rounds differently; inference as ``"dot"``)
    conv_impl: str = "dot"
    #: the winner selection of a training step: ``None`` = SpykeTorch's k-WTA with ``k`` and ``radius``
    #: (fused with pointwise inhibition), else any :class:`snnjax.inhibition.Inhibition` called as
    #: ``inhibit(pot, spikes)`` after pointwise inhibition (see :func:`~.inhibition.winners_of`)
    inhibition: Any = None


class NetworkSpec(NamedTuple):
    name: str
    dog: tuple[tuple[float, float, float], ...]
    dog_padding: int
    timesteps: int
    layers: tuple[ConvLayerSpec, ...]  #: unsupervised STDP layers
    decision: ConvLayerSpec | None  #: R-STDP decision layer (Mozafari) or None (readout)
    n_classes: int = 10

    def encoder(self) -> frontend.DogLatencyEncoder:
        return frontend.dog_latency(self.dog, self.dog_padding, 50.0, 8, self.timesteps)


CONV_IMPLS = ("dot", "nhwc", "events")


def check_conv_impl(conv_impl: str) -> str:
    if conv_impl not in CONV_IMPLS:
        raise ConfigError(f"conv_impl must be one of {', '.join(CONV_IMPLS)}, got {conv_impl!r}")
    return conv_impl


def mozafari2019(k1: int = 5, r1: int = 3, k2: int = 8, r2: int = 1, timesteps: int = 15,
                 conv_impl: str = "dot") -> NetworkSpec:
    """The MozafariDeep MNIST network (30 k5 θ15 → pool 2 → 250 k3 θ10 → pool 3 → 200 k5 decision).

    ``conv_impl`` picks the convolution of the two STDP layers (see :attr:`ConvLayerSpec.conv_impl`);
    the decision layer, one frame of 250 maps, keeps the dot form, which is 3× faster there on CPU.
    """
    check_k_radius(k1, r1)
    check_k_radius(k2, r2)
    impl = check_conv_impl(conv_impl)
    return NetworkSpec(
        "mozafari", frontend.MOZAFARI_DOG, 6, frontend.check_timesteps(timesteps),
        (
            ConvLayerSpec(6, 30, 5, 15.0, k1, r1, pad_in=2, pool=(2, 2, 0), conv_impl=impl),
            ConvLayerSpec(30, 250, 3, 10.0, k2, r2, pad_in=1, pool=(3, 3, 0), conv_impl=impl),
        ),
        ConvLayerSpec(250, 200, 5, None, 1, 0, pad_in=2),
    )


def kheradpisheh2018(k1: int = 5, r1: int = 2, k2: int = 8, r2: int = 1, timesteps: int = 15,
                     conv_impl: str = "dot") -> NetworkSpec:
    """The KheradpishehDeep MNIST network (32 k5 θ10 → pool 2/2/1 → 150 k2 θ1 → pool 2/2/1 → readout)."""
    check_k_radius(k1, r1)
    check_k_radius(k2, r2)
    impl = check_conv_impl(conv_impl)
    return NetworkSpec(
        "kheradpisheh", frontend.KHERADPISHEH_DOG, 3, frontend.check_timesteps(timesteps),
        (
            ConvLayerSpec(2, 32, 5, 10.0, k1, r1, pad_in=2, pool=(2, 2, 1), conv_impl=impl),
            ConvLayerSpec(32, 150, 2, 1.0, k2, r2, pad_in=1, pool=(2, 2, 1), pointwise_input=True, conv_impl=impl),
        ),
        None,
    )


def init_weight(key: jax.Array, layer: ConvLayerSpec) -> jax.Array:
    """N(w_mean, w_std) conv weights ``(out, in, k, k)`` (not clipped, as in SpykeTorch)."""
    shape = (layer.out_maps, layer.in_maps, layer.kernel, layer.kernel)
    return layer.w_mean + layer.w_std * jax.random.normal(key, shape, jnp.float32)


def init_weights(key: jax.Array, spec: NetworkSpec) -> list[jax.Array]:
    """Initial weights of every layer (STDP layers, then the decision layer) from one normal draw."""
    layers = list(spec.layers) + ([spec.decision] if spec.decision is not None else [])
    shapes = [(l.out_maps, l.in_maps, l.kernel, l.kernel) for l in layers]
    sizes = [int(np.prod(s)) for s in shapes]
    z = jax.random.normal(key, (sum(sizes),), jnp.float32)
    out, start = [], 0
    for layer, shape, size in zip(layers, shapes, sizes):
        out.append(layer.w_mean + layer.w_std * z[start : start + size].reshape(shape))
        start += size
    return out


# ----------------------------------------------------------------------------- one image


class LayerStep(NamedTuple):
    spk_in: jax.Array  #: padded input wave (float32)
    pot: jax.Array  #: potentials after fire + pointwise inhibition
    spk: jax.Array  #: sign(pot)
    winners: Winners


def _input_wave(layer: ConvLayerSpec, latency: jax.Array, timesteps: int) -> jax.Array:
    x = frontend.latency_to_wave(latency, timesteps, jnp.float32)
    return pad(x, layer.pad_in) if layer.pad_in else x


def _reads_latency_map(layer: ConvLayerSpec) -> bool:
    """Whether the layer's potentials are the dot form's product on its cached first-spike map (no
    pointwise inhibition on the input): :func:`_layer_potentials`, and the products the inference
    chunks are measured on (:func:`chunkable`)."""
    return layer.conv_impl in ("dot", "events") and not layer.pointwise_input


def _layer_potentials(layer: ConvLayerSpec, weight: jax.Array, latency: jax.Array, x: jax.Array,
                      timesteps: int, min_features: int = 0) -> jax.Array:
    """Conv potentials ``(T, F, H', W')`` of a layer on its (padded, possibly inhibited) input wave ``x``.

    With the dot form and an input that is the cached wave itself (no pointwise inhibition on the
    input), the potentials come from the first-spike map (:func:`~.layers.conv_latency`: bit for bit
    the same, without building ``T`` shifted views of the wave; ``min_features``: see
    :func:`~.layers.conv_latency`).
    """
    if _reads_latency_map(layer):
        return conv_latency(latency, weight, timesteps, layer.pad_in, min_features)
    return conv(x, weight, impl="dot" if layer.conv_impl == "events" else layer.conv_impl)


def _events_apply(layer: ConvLayerSpec) -> bool:
    """Whether a training step of ``layer`` runs from first crossings (:mod:`.events`): ``conv_impl =
    "events"`` with the fused k-WTA, θ ≥ 0 and the cached wave itself as input."""
    return (layer.conv_impl == "events" and layer.inhibition is None and not layer.pointwise_input
            and layer.threshold is not None and layer.threshold >= 0)


def layer_train_forward(layer: ConvLayerSpec, weight: jax.Array, latency: jax.Array, timesteps: int) -> LayerStep:
    """Training-mode pass of one STDP layer on one cached input (first-spike map ``(C, H, W)``)."""
    x = _input_wave(layer, latency, timesteps)
    if layer.pointwise_input:
        x = pointwise_inhibition(x)
    _, pot = fire(_layer_potentials(layer, weight, latency, x, timesteps), layer.threshold)
    if _events_apply(layer):
        # spikes and winners from the first crossings (3x fewer multiply-adds); the dense potentials
        # above are only computed where a caller reads LayerStep.pot (XLA drops them otherwise)
        spk, winners, _ = first_spike_k_winners(latency, weight, layer.threshold, timesteps, layer.pad_in,
                                                layer.k, layer.radius)
        return LayerStep(x, pointwise_inhibition(pot), spk, winners)
    if layer.inhibition is None:
        # pointwise inhibition → sign → k-WTA, with the k-WTA scores on the surviving feature only
        pot, spk, winners = pointwise_k_winners(pot, layer.k, layer.radius)
    else:  # pointwise inhibition → sign → the layer's own scheme
        pot = pointwise_inhibition(pot)
        spk = jnp.sign(pot)
        winners = winners_of(layer.inhibition(pot, spk), pot, spk, layer.k)
    return LayerStep(x, pot, spk, winners)


def pooled_extent(layer: ConvLayerSpec, latency: jax.Array) -> tuple[int, int]:
    """Rows and columns of the conv output that the layer's pooling reads: all of them, except where a
    pooling without padding leaves the last ones out (layer 2 of the Mozafari network: 12 of 14)."""
    ho = latency.shape[1] + 2 * layer.pad_in - layer.kernel + 1
    wo = latency.shape[2] + 2 * layer.pad_in - layer.kernel + 1
    if layer.pool is None or layer.pool[2] != 0:
        return ho, wo
    k, s = layer.pool[0], layer.pool[1]
    return (ho - k) // s * s + k, (wo - k) // s * s + k


def _pixel_major_potentials(layer: ConvLayerSpec, weight: jax.Array, latency: jax.Array, timesteps: int) -> jax.Array:
    """``(T, P, F)`` potentials of the positions the pooling reads (:func:`pooled_extent`, ``P`` of them,
    row-major) as one product ``(T·P, C·kh·kw) × (C·kh·kw, F)``."""
    hu, wu = pooled_extent(layer, latency)
    p = layer.pad_in
    lat = jnp.pad(latency, ((0, 0), (p, p), (p, p)), constant_values=timesteps) if p else latency
    lat = lat[:, : hu + layer.kernel - 1, : wu + layer.kernel - 1]  # the padded rows / columns that feed them
    cols = patch_latencies(lat, (layer.kernel, layer.kernel), 0, timesteps)  # (P, C·kh·kw), (c, i, j) order
    on = (cols[None] <= jnp.arange(timesteps, dtype=jnp.int32)[:, None, None]).astype(jnp.float32)
    wt = weight.astype(jnp.float32).reshape(weight.shape[0], -1)
    return jnp.einsum("tpk,fk->tpf", on, wt, precision=jax.lax.Precision.HIGHEST)


def inference_potentials(layer: ConvLayerSpec, weight: jax.Array, latency: jax.Array, timesteps: int,
                         min_features: int = 0, pixel_major: bool = False) -> jax.Array:
    """The potentials ``(T, F, H', W')`` of a frozen layer's inference (:func:`layer_forward`).

    ``min_features``: see :func:`~.layers.conv_latency`. ``pixel_major``: only the rows and columns
    the pooling reads (:func:`pooled_extent`), as one product with the positions on its rows and the
    filters on its columns — for one image of layer 2 of the Mozafari network on CPU the same sums,
    bit for bit, in 0.7× the time (``tests/test_conv_inference.py``; :data:`PIXEL_MAJOR`)."""
    if pixel_major:
        hu, wu = pooled_extent(layer, latency)
        pot = _pixel_major_potentials(layer, weight, latency, timesteps)
        return jnp.moveaxis(pot.reshape(timesteps, hu, wu, -1), -1, 1)
    return _layer_potentials(layer, weight, latency, _input_wave(layer, latency, timesteps), timesteps, min_features)


def layer_forward(layer: ConvLayerSpec, weight: jax.Array, latency: jax.Array, timesteps: int,
                  min_features: int = 0, pixel_major: bool = False) -> jax.Array:
    """Inference pass of a frozen layer: pad → conv → fire → pool; returns the output first-spike map (uint8).

    ``min_features``, ``pixel_major``: see :func:`inference_potentials` (the same spikes)."""
    if not pixel_major:
        spk, _ = fire(inference_potentials(layer, weight, latency, timesteps, min_features), layer.threshold)
        if layer.pool is not None:
            spk = pool(spk, *layer.pool)
        return frontend.wave_to_latency(spk)
    hu, wu = pooled_extent(layer, latency)
    spk, _ = fire(_pixel_major_potentials(layer, weight, latency, timesteps), layer.threshold)
    spk = spk.reshape(timesteps, hu, wu, -1)  # (T, H, W, F): pooled as it is, transposed once pooled
    if layer.pool is not None:
        spk = jnp.moveaxis(pool(jnp.moveaxis(spk, -1, 0), *layer.pool), 0, -1)
    return jnp.moveaxis(frontend.wave_to_latency(spk), -1, 0)


def decision_forward(layer: ConvLayerSpec, weight: jax.Array, latency: jax.Array, timesteps: int,
                     n_classes: int = 10) -> tuple[jax.Array, jax.Array, Winners]:
    """Decision layer on one input: ``(decision, last-step potentials, winner)``; decision −1 = silence."""
    x_last = (latency.astype(jnp.int32) <= timesteps - 1).astype(jnp.float32)[None]
    x_last = pad(x_last, layer.pad_in) if layer.pad_in else x_last
    pot_last = conv(x_last, weight, impl=layer.conv_impl)[0]
    win = last_step_winner(pot_last, timesteps)
    per_class = max(layer.out_maps // n_classes, 1)
    f = win.index[0, 0]
    decision = jnp.where(win.valid[0], f // per_class, -1)
    return decision, pot_last, win


# ----------------------------------------------------------------------------- training on caches


def _check_cache(latencies: jax.Array, layer: ConvLayerSpec) -> None:
    if latencies.ndim != 4 or latencies.shape[1] != layer.in_maps:
        raise InputError(f"expected cached first-spike maps (N, {layer.in_maps}, H, W), got shape {latencies.shape}")


def layer_train_step(layer: ConvLayerSpec, rule: LearningRule, timesteps: int):
    """``step(weight, rule_state, latency) -> (weight, rule_state)``: one STDP image of a layer."""

    def step(w, st, lat):
        out = layer_train_forward(layer, w, lat, timesteps)
        return rule.update(w, st, ConvActivity(out.spk_in, out.spk, out.winners))

    return step


def train_layer(key: jax.Array, weight: jax.Array, rule_state, latencies: jax.Array, layer: ConvLayerSpec,
                rule: LearningRule, timesteps: int):
    """One epoch of unsupervised STDP on a cached dataset ``(N, C, H, W)`` (uint8 first-spike maps).

    ``key`` shuffles the image order. Returns ``(weight, rule_state)``. Jit with ``layer``, ``rule``
    and ``timesteps`` static, or call through :func:`make_layer_trainer`.
    """
    _check_cache(latencies, layer)
    order = jax.random.permutation(key, latencies.shape[0])
    one_image = layer_train_step(layer, rule, timesteps)

    def step(carry, idx):
        return one_image(*carry, latencies[idx]), None

    (weight, rule_state), _ = jax.lax.scan(step, (weight, rule_state), order)
    return weight, rule_state


def make_layer_trainer(layer: ConvLayerSpec, rule: LearningRule, timesteps: int, *, seeds: bool = False, shared_cache: bool = True):
    """Jitted ``(key, weight, rule_state, cache) -> (weight, rule_state)`` for one epoch; ``seeds=True`` vmaps over a leading seed axis."""
    fn = lambda key, w, st, cache: train_layer(key, w, st, cache, layer, rule, timesteps)  # noqa: E731
    if seeds:
        fn = jax.vmap(fn, in_axes=(0, 0, 0, None if shared_cache else 0))
    return jax.jit(fn)


#: Images per product of inference (:func:`map_images`): layers 1 and 2 (:func:`layer_outputs`) and
#: the decision layer (:func:`decision_outputs`). Few images keep the operand in cache (64 images of
#: layer 1 hold 452 MB of ``(T, C·kh·kw, H'·W')`` float32); see :data:`CHUNK_ROUNDS_AS_ONE`.
INFERENCE_CHUNK = 1
DECISION_CHUNK = 4
#: Images per block of inference: every stored result was made with one product per 64 images (and
#: one for the ``N mod 64`` after the last full block).
INFERENCE_BLOCK = 64
#: Where a block of ``n`` images may run in chunks and give the same potentials bit for bit, per
#: product (``(in maps, out maps, kernel, padding, input H, input W)`` of one image): on CPU, XLA's
#: product sums each potential in an order that depends on how many images (and, on layer 1, how
#: many filters: :func:`~.layers.conv_latency`) it holds. Measured (JAX 0.10, CPU) on the Mozafari
#: network, 2–8 seeds, against the float32 sum of the terms one after another in order: layer 1 sums
#: so for ``n mod 4`` in {0, 1} (not 2, 3), layer 2 for ``n mod 16 < 8``; the decision layer for
#: ``n`` a multiple of 4 rounds as 4 images do. Any other block, or product, runs as one product, as
#: it always did (``tests/test_conv_inference.py`` checks these).
CHUNK_ROUNDS_AS_ONE: dict[tuple[int, ...], Any] = {
    (6, 30, 5, 2, 28, 28): lambda n: n % 4 in (0, 1),
    (30, 250, 3, 1, 14, 14): lambda n: n % 16 < 8,
    (250, 200, 5, 2, 4, 4): lambda n: n % 4 == 0,
}
#: Products of one image that also sum so with the positions on the product's rows and the filters
#: on its columns (``pixel_major`` of :func:`inference_potentials`): layer 2 of the Mozafari network
#: (not layer 1: with 8 seeds' filters on the columns it rounds otherwise).
PIXEL_MAJOR = frozenset({(30, 250, 3, 1, 14, 14)})


def _product_key(layer: ConvLayerSpec, latencies: jax.Array) -> tuple[int, ...]:
    return (layer.in_maps, layer.out_maps, layer.kernel, layer.pad_in, *latencies.shape[2:])


def _measured_form(layer: ConvLayerSpec) -> bool:
    """The form :data:`CHUNK_ROUNDS_AS_ONE` and :data:`PIXEL_MAJOR` were measured on: the dot form's
    product on the cached first-spike map, on CPU."""
    return _reads_latency_map(layer) and jax.default_backend() == "cpu"


def chunkable(layer: ConvLayerSpec, latencies: jax.Array) -> Any:
    """``n -> bool``: whether a block of ``n`` images of ``layer`` on ``latencies`` ``(N, C, H, W)`` may
    run in chunks (:data:`CHUNK_ROUNDS_AS_ONE`; never for another product, another ``conv_impl`` than
    the dot form's, nor off CPU)."""
    rule = CHUNK_ROUNDS_AS_ONE.get(_product_key(layer, latencies)) if _measured_form(layer) else None
    return rule or (lambda n: False)


def map_images(fn, xs: jax.Array, block: int = INFERENCE_BLOCK, chunk: int = INFERENCE_CHUNK,
               chunked: Any = lambda n: True, fn_chunk: Any = None) -> jax.Array:
    """``fn`` over the leading axis of ``xs``, grouped as ``lax.map(fn, xs, batch_size=block)`` groups it
    (full blocks of ``block`` images, then the ``N mod block`` left), each group of ``n`` images in
    chunks of ``chunk`` where ``chunked(n)`` and ``chunk`` divides ``n`` (then with ``fn_chunk``, by
    default ``fn``), else in one batch (``vmap``)."""
    block, chunk = int(block), int(chunk)
    if block < 1 or chunk < 1 or block % chunk:
        raise ConfigError(f"the inference chunk ({chunk}) must divide its block ({block})")
    fc = fn if fn_chunk is None else fn_chunk
    n = xs.shape[0]
    full, rest = n - n % block, n % block
    split = lambda m: chunk < m and m % chunk == 0 and chunked(m)  # noqa: E731
    parts = []
    if full:
        parts.append(jax.lax.map(fc, xs[:full], batch_size=chunk) if split(block)
                     else jax.lax.map(fn, xs[:full], batch_size=block))
    if rest:
        parts.append(jax.lax.map(fc, xs[full:], batch_size=chunk) if split(rest) else jax.vmap(fn)(xs[full:]))
    return parts[0] if len(parts) == 1 else jax.tree_util.tree_map(lambda *a: jnp.concatenate(a), *parts)


def layer_outputs(weight: jax.Array, latencies: jax.Array, layer: ConvLayerSpec, timesteps: int,
                  batch_size: int = INFERENCE_BLOCK, chunk: int | None = None, min_features: int = 0) -> jax.Array:
    """Run a frozen layer over a cached dataset: ``(N, C, H, W)`` → pooled output first-spike maps (uint8).

    Blocks of ``batch_size`` images, ``chunk`` (default :data:`INFERENCE_CHUNK`) at a time where that
    rounds as the block (:func:`map_images`, :func:`chunkable`; one image at a time pixel-major where
    :data:`PIXEL_MAJOR` allows: :func:`inference_potentials`); ``min_features``: see
    :func:`~.layers.conv_latency`."""
    _check_cache(latencies, layer)
    chunk = INFERENCE_CHUNK if chunk is None else int(chunk)
    pixel_major = chunk == 1 and _product_key(layer, latencies) in PIXEL_MAJOR and _measured_form(layer)
    return map_images(lambda lat: layer_forward(layer, weight, lat, timesteps, min_features), latencies, batch_size,
                      chunk, chunkable(layer, latencies),
                      lambda lat: layer_forward(layer, weight, lat, timesteps, min_features, pixel_major=pixel_major))


def decision_outputs(weight: jax.Array, latencies: jax.Array, layer: ConvLayerSpec, timesteps: int,
                     n_classes: int = 10, batch_size: int = INFERENCE_BLOCK, chunk: int | None = None) -> jax.Array:
    """Decisions ``(N,)`` of the decision layer on a cached dataset (``-1`` = silence), in blocks of
    ``batch_size`` images, ``chunk`` (default :data:`DECISION_CHUNK`) at a time where that rounds as the
    block (:func:`map_images`, :func:`chunkable`)."""
    _check_cache(latencies, layer)
    return map_images(lambda lat: decision_forward(layer, weight, lat, timesteps, n_classes)[0], latencies, batch_size,
                      DECISION_CHUNK if chunk is None else chunk, chunkable(layer, latencies))


class DecisionStats(NamedTuple):
    correct: jax.Array
    wrong: jax.Array
    silent: jax.Array


def _decision_epoch(key, weight, rule_state, latencies, labels, layer, timesteps, n_classes, update):
    _check_cache(latencies, layer)
    order = jax.random.permutation(key, latencies.shape[0])

    def step(carry, idx):
        w, st, ok = carry
        lat, label = latencies[idx], labels[idx]
        decision, pot_last, win = decision_forward(layer, w, lat, timesteps, n_classes)
        x = _input_wave(layer, lat, timesteps)
        spk_out = jnp.sign(pot_last)[None]  # only the last step spikes: the counts are all STDP needs
        w, st, step_ok = update(w, st, ConvActivity(x, spk_out, win, decision, label))
        silent = decision < 0
        good = (~silent) & (decision == label)
        return (w, st, ok & step_ok), jnp.stack([good, (~silent) & ~good, silent]).astype(jnp.int32)

    (weight, rule_state, ok), counts = jax.lax.scan(step, (weight, rule_state, jnp.bool_(True)), order)
    c = counts.sum(0)
    return weight, rule_state, DecisionStats(c[0], c[1], c[2]), ok


def train_decision(key: jax.Array, weight: jax.Array, rule_state, latencies: jax.Array, labels: jax.Array,
                   layer: ConvLayerSpec, rule: LearningRule, timesteps: int, n_classes: int = 10):
    """One epoch of R-STDP on the decision layer; returns ``(weight, rule_state, DecisionStats)`` (counts)."""
    def update(w, st, activity):
        return *rule.update(w, st, activity), jnp.bool_(True)

    return _decision_epoch(key, weight, rule_state, latencies, labels, layer, timesteps, n_classes, update)[:3]


def train_decision_rows(key: jax.Array, weight: jax.Array, rule_state, latencies: jax.Array, labels: jax.Array,
                        layer: ConvLayerSpec, rule: LearningRule, timesteps: int, n_classes: int = 10):
    """:func:`train_decision` through the rule's declared row-local form (only the winner's kernel
    is read and written after each image): ``(weight, rule_state, DecisionStats, ok)``.

    The same bits as :func:`train_decision` when every kernel satisfies the form's ``holds`` at the
    start (:func:`snnjax.plasticity.row_local_holds`) and ``ok`` comes back true; otherwise the
    caller must run :func:`train_decision` from the same start.
    """
    if rule.row_local is None:
        raise ConfigError("this decision rule declares no row-local form (LearningRule.row_local); "
                          "use train_decision")

    def update(w, st, activity):
        return row_local_step(rule.row_local, w, st, activity)

    return _decision_epoch(key, weight, rule_state, latencies, labels, layer, timesteps, n_classes, update)


def evaluate_decision(weight: jax.Array, latencies: jax.Array, labels: jax.Array, layer: ConvLayerSpec,
                      timesteps: int, n_classes: int = 10, batch_size: int = INFERENCE_BLOCK) -> jax.Array:
    """Accuracy of the decision layer (silence counts as wrong)."""
    dec = decision_outputs(weight, latencies, layer, timesteps, n_classes, batch_size)
    return jnp.mean((dec == labels).astype(jnp.float32))


# ----------------------------------------------------------------------------- linear readout (Kheradpisheh)


def readout_features(latencies: jax.Array, timesteps: int) -> jax.Array:
    """Flattened final-step spikes (``max`` over time of the pooled wave) as float32 features ``(N, D)``."""
    return (latencies.astype(jnp.int32) < timesteps).astype(jnp.float32).reshape(latencies.shape[0], -1)


def train_readout(key: jax.Array, features: jax.Array, labels: jax.Array, n_classes: int = 10, steps: int = 300,
                  learning_rate: float = 1e-2, weight_decay: float = 1e-4):
    """Softmax regression trained with optax (adamw, full batch); returns ``(W, b)``."""
    d = features.shape[1]
    params = (jnp.zeros((d, n_classes), jnp.float32), jnp.zeros((n_classes,), jnp.float32))
    opt = optax.adamw(learning_rate, weight_decay=weight_decay)
    del key  # deterministic (zero init, full batch)

    def loss(p):
        logits = features @ p[0] + p[1][None]
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    def step(carry, _):
        p, s = carry
        g = jax.grad(loss)(p)
        u, s = opt.update(g, s, p)
        return (optax.apply_updates(p, u), s), None

    with jax.numpy_dtype_promotion("standard"):  # optax's bias correction mixes int and float
        (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
    return params


def readout_accuracy(params, features: jax.Array, labels: jax.Array) -> jax.Array:
    """Accuracy of the readout; an image without any feature spike counts as wrong (as the original)."""
    pred = jnp.argmax(features @ params[0] + params[1][None], axis=-1)
    silent = features.sum(-1) == 0
    return jnp.mean(((pred == labels) & ~silent).astype(jnp.float32))


def with_inhibitions(spec: NetworkSpec, schemes) -> NetworkSpec:
    """``spec`` with the winner selection of its STDP layers replaced, one scheme per layer.

    A :class:`~.inhibition.KWinnersTakeAll` becomes the layer's own ``k`` / ``radius`` (the fused
    k-WTA step); any other :class:`snnjax.inhibition.Inhibition` is called by the layer
    (:attr:`ConvLayerSpec.inhibition`).
    """
    layers = []
    for layer, scheme in zip(spec.layers, schemes, strict=True):
        if isinstance(scheme, KWinnersTakeAll):
            check_k_radius(scheme.k, scheme.radius)
            layers.append(layer._replace(k=scheme.k, radius=scheme.radius, inhibition=None))
        elif callable(scheme):
            layers.append(layer._replace(inhibition=scheme))
        else:
            raise ConfigError(f"an inhibition scheme must be callable as inhibit(potentials, spikes), got "
                              f"{type(scheme).__name__}")
    return spec._replace(layers=tuple(layers))


def network(name: str, **params) -> NetworkSpec:
    """Network spec by name (``mozafari`` | ``kheradpisheh``)."""
    table = {"mozafari": mozafari2019, "kheradpisheh": kheradpisheh2018}
    if name not in table:
        raise ConfigError(f"unknown network {name!r}; choose one of {', '.join(table)}")
    return table[name](**params)


__all__ = [
    "ConvLayerSpec", "NetworkSpec", "mozafari2019", "kheradpisheh2018", "init_weight", "init_weights",
    "layer_train_forward", "layer_train_step", "layer_forward", "decision_forward", "train_layer", "make_layer_trainer",
    "layer_outputs", "train_decision", "train_decision_rows", "evaluate_decision", "readout_features", "train_readout",
    "readout_accuracy", "network", "with_inhibitions", "DecisionStats", "LayerStep", "INFERENCE_CHUNK", "DECISION_CHUNK",
    "INFERENCE_BLOCK", "CHUNK_ROUNDS_AS_ONE", "chunkable", "pooled_extent", "inference_potentials", "PIXEL_MAJOR", "map_images", "decision_outputs",
]
