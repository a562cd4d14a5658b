"""Inference of the conv network (``snnjax_plugins.conv``): how its products round, bit for bit.

On CPU, XLA's product sums every potential of layers 1 and 2 of the Mozafari network in one chain
over its ``C·kh·kw`` terms, in order — for the products every stored result was made with (64
images at a time, two or more seeds vmapped on layer 1's shared cache). Inference now runs the
images of each block of 64 a few at a time (``networks.INFERENCE_CHUNK``) and pads a seed that is
alone in layer 1's product with zero filters: these tests pin that both keep that rounding (the
sequential chain, computed here in NumPy) and so that one seed's results do not depend on how many
seeds run beside it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from snnjax.errors import ConfigError
from snnjax_plugins.conv import events as E
from snnjax_plugins.conv import layers as L
from snnjax_plugins.conv import networks as N
from snnjax_plugins.conv import pipeline as P

T = 15
SPEC = N.mozafari2019()
L1, L2 = SPEC.layers


def _maps(seed: int, n: int, shape: tuple[int, int, int], density: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    on = rng.random((n, *shape)) < density
    return np.where(on, rng.integers(0, T, (n, *shape)), T).astype(np.uint8)


def _weights(layer: N.ConvLayerSpec, seeds: int) -> jax.Array:
    return jnp.stack([N.init_weight(k, layer) for k in jax.random.split(jax.random.key(7), seeds)])


def _sequential(latency: np.ndarray, weight: np.ndarray, layer: N.ConvLayerSpec, positions: np.ndarray,
                steps: tuple[int, ...]) -> np.ndarray:
    """``(len(steps), P', F)`` potentials summed in float32 one term after another, in ``(c, i, j)`` order."""
    cols = np.asarray(E.patch_latencies(jnp.asarray(latency), (layer.kernel,) * 2, layer.pad_in, T))[positions]
    wf = np.asarray(weight, np.float32).reshape(weight.shape[0], -1)
    return np.stack([np.cumsum((cols[:, None, :] <= t) * wf[None], axis=2, dtype=np.float32)[..., -1] for t in steps])


def _check_sequential(pot, lats, weights, layer, rng):
    """Every seed's potentials (``(S, N, T, F, H, W)``) equal the sequential sums at sampled positions."""
    steps = (2, 7, 14)
    for s in range(pot.shape[0]):
        for i in range(pot.shape[1]):
            lat = lats[s, i] if lats.ndim == 5 else lats[i]
            positions = rng.integers(0, pot.shape[-1] * pot.shape[-2], 24)
            got = np.asarray(pot[s, i]).reshape(T, pot.shape[3], -1)[np.array(steps)][:, :, positions]
            np.testing.assert_array_equal(got.transpose(0, 2, 1), _sequential(lat, weights[s], layer, positions, steps))


def test_layer1_one_seed_rounds_as_the_same_seed_beside_others_and_as_the_sequential_sum():
    lats = jnp.asarray(_maps(0, 4, (6, 28, 28), 0.25))
    assert N.chunkable(L1, lats)(4) and N.chunkable(L1, lats)(64) and not N.chunkable(L1, lats)(2)
    w = _weights(L1, 4)
    chunks = lambda ww, pad=0: N.map_images(lambda l: L.conv_latency(l, ww, T, L1.pad_in, pad), lats)  # noqa: E731
    whole = lambda ww: jax.vmap(lambda l: L.conv_latency(l, ww, T, L1.pad_in))(lats)  # noqa: E731

    @jax.jit
    def forms(w):
        return (chunks(w[0], P.ALONE_MIN_ROWS)[None],  # one seed alone, padded as ConvPipeline.propagate runs it
                jax.vmap(chunks)(w[:2]), jax.vmap(chunks)(w),
                jax.vmap(whole)(w))  # the 4 images in one product (the form of the stored results)

    one, two, four, product = map(np.asarray, forms(w))
    assert one.shape == (1, 4, T, 30, 28, 28)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[0], four[0])
    np.testing.assert_array_equal(two[1], four[1])
    np.testing.assert_array_equal(four, product)
    _check_sequential(four, np.asarray(lats), np.asarray(w), L1, np.random.default_rng(1))


@pytest.mark.parametrize("network, maps", [("mozafari", (6, 28, 28)), ("kheradpisheh", (2, 28, 28))])
def test_a_seed_alone_needs_exactly_alone_min_rows_to_round_as_beside_another(network, maps):
    """Layer 1's potentials of one seed padded to ``ALONE_MIN_ROWS`` filter rows equal the same seed's
    beside a second; with one row fewer XLA sums them in another order (so the padding is needed,
    and no smaller one would do)."""
    layer = N.network(network).layers[0]
    lats = jnp.asarray(_maps(0, 4, maps, 0.25))
    w = _weights(layer, 2)
    chunks = lambda ww, pad=0: N.map_images(lambda l: L.conv_latency(l, ww, T, layer.pad_in, pad), lats)  # noqa: E731
    two, alone, below = map(np.asarray, jax.jit(lambda w: (
        jax.vmap(chunks)(w)[0], chunks(w[0], P.ALONE_MIN_ROWS), chunks(w[0], P.ALONE_MIN_ROWS - 1)))(w))
    np.testing.assert_array_equal(alone, two)
    assert np.mean(below != two) > 0.01


def test_layer2_chunks_round_as_one_product_and_as_the_sequential_sum_for_any_seed_count():
    lats = jnp.asarray(_maps(2, 2, (4, 30, 14, 14), 0.77))  # per-seed caches, 2 seeds
    assert N.chunkable(L2, lats[0])(4) and N.chunkable(L2, lats[0])(64) and not N.chunkable(L2, lats[0])(8)
    w = _weights(L2, 2)
    chunks = lambda ww, c: N.map_images(lambda l: L.conv_latency(l, ww, T, L2.pad_in), c)  # noqa: E731
    whole = lambda ww, c: jax.vmap(lambda l: L.conv_latency(l, ww, T, L2.pad_in))(c)  # noqa: E731
    one, two, product = map(np.asarray, jax.jit(lambda w, c: (
        chunks(w[0], c[0])[None], jax.vmap(chunks)(w, c), jax.vmap(whole)(w, c)))(w, lats))
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(two, product)
    _check_sequential(two[:, :2], np.asarray(lats[:, :2]), np.asarray(w), L2, np.random.default_rng(3))
    # one image at a time, pixel-major, only the 12 x 12 positions the 3 x 3 pooling reads: the same sums there
    assert N.pooled_extent(L2, lats[0, 0]) == (12, 12)
    pixel_major = jax.jit(jax.vmap(lambda ww, c: N.map_images(
        lambda l: N.inference_potentials(L2, ww, l, T, pixel_major=True), c)))
    np.testing.assert_array_equal(pixel_major(w, lats), two[..., :12, :12])
    outs = [jax.jit(jax.vmap(lambda ww, c, pm=pm: N.map_images(lambda l: N.layer_forward(L2, ww, l, T, pixel_major=pm), c)))(w, lats)
            for pm in (False, True)]
    np.testing.assert_array_equal(outs[0], outs[1])


def test_decision_chunks_round_as_one_product_of_their_block():
    lats = jnp.asarray(_maps(4, 8, (250, 4, 4), 0.3))
    w = _weights(SPEC.decision, 2)
    pot = lambda block, chunk: jax.jit(jax.vmap(lambda ww: N.map_images(  # noqa: E731
        lambda l: N.decision_forward(SPEC.decision, ww, l, T)[1], lats, block, chunk)))(w)
    whole = np.asarray(jax.jit(jax.vmap(lambda ww: lax.map(
        lambda l: N.decision_forward(SPEC.decision, ww, l, T)[1], lats, batch_size=8)))(w))
    assert N.chunkable(SPEC.decision, lats)(8) and not N.chunkable(SPEC.decision, lats)(6)
    np.testing.assert_array_equal(np.asarray(pot(8, N.DECISION_CHUNK)), whole)


@pytest.mark.parametrize("network, maps, out", [("mozafari", (6, 28, 28), (30, 14, 14)),
                                                 ("kheradpisheh", (2, 28, 28), (32, 15, 15))])
def test_pipeline_outputs_of_one_seed_are_those_of_the_same_seed_in_a_two_and_four_seed_run(network, maps, out):
    spec = N.network(network)
    lat0 = _maps(5, 4, maps, 0.25)
    pipe = P.ConvPipeline(spec, 10)
    w1 = _weights(spec.layers[0], 4)
    outs = {s: np.asarray(pipe.propagate(0, w1[:s], lat0)) for s in (1, 2, 4)}
    assert f"propagate1-f{P.ALONE_MIN_ROWS}" in pipe.compile_s and "propagate1" in pipe.compile_s  # one seed alone was padded
    assert outs[1].shape == (1, 4, *out) and 0 < np.mean(outs[1] < T) < 1
    np.testing.assert_array_equal(outs[1][0], outs[2][0])
    np.testing.assert_array_equal(outs[1][0], outs[4][0])


def test_map_images_groups_as_lax_map_and_rejects_a_chunk_that_does_not_divide_its_block():
    xs = jnp.arange(11.0)
    np.testing.assert_array_equal(N.map_images(lambda x: x * 2, xs, 4, 2), np.arange(11.0) * 2)
    np.testing.assert_array_equal(N.map_images(lambda x: x + 1, xs[:8], 4, 1, lambda n: False), np.arange(8.0) + 1)
    with pytest.raises(ConfigError, match="must divide"):
        N.map_images(lambda x: x, xs, 64, 5)
