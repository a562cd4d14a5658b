"""Where the conv network's time goes, per layer: input activity and CPU ms per image of each part.

    taskset -c 1 python benchmarks/conv_profile.py --images 32

Prints the CPU ms per image of the front end's parts (DoG filters, the local normalisation's box
mean, the latency ranks; all images at once), then, for STDP layers 1 and 2 of the Mozafari network (seed 0, initial weights; layer 2 reads
layer 1's pooled inference output, as in training): the fraction of input units that spike at all
and the active entries per receptive field (of ``C·kh·kw``); then process CPU ms per image, one
image at a time (``lax.map`` / ``lax.scan``), mean of 3 calls after a compile, of

* ``conv dot``: the dense potentials ``(T, F, H', W')`` (:func:`~snnjax_plugins.conv.layers.conv_latency`),
  thresholded, the dot form's product;
* ``conv one-hot events``: the same potentials as per-step increments of the first-spike map
  (one-hot in time) contracted with the weights, then a cumulative sum over time;
* ``first crossings (events)``: the bisection of ``conv_impl = "events"`` alone (its 4 products);
* ``STDP step dot`` / ``STDP step events``: one training image (conv, fire, pointwise inhibition,
  k-WTA, STDP update) with ``conv_impl = "dot"`` / ``"events"``;
* ``inference, one product per 64 images`` (the form before chunking) / ``inference (default
  chunks)``: :func:`~snnjax_plugins.conv.networks.layer_outputs` with ``chunk=64`` / its default;

and for layer 1 how the rounding of the dense potentials depends on the product: the potentials
(and spikes) that differ between one product of all images and the default chunks, between one
seed alone (padded to ``ALONE_MIN_ROWS`` filters, as ``ConvPipeline.propagate`` runs it) and the same seed vmapped
beside a second, and between one seed unpadded and two seeds.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=32, help="MNIST training images (default 32)")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per part (default 3)")
    args = ap.parse_args(argv)
    if args.images < 1 or args.repeats < 1:
        raise SystemExit("error: --images and --repeats must be >= 1")

    from snnjax import data
    from snnjax_plugins.conv import events as E, frontend as F, layers as L, networks as N, pipeline as P

    n, T = args.images, 15
    pipe = P.ConvPipeline(N.mozafari2019(), 10)
    lat0 = jnp.asarray(pipe.encode(np.asarray(data.load("mnist-embedded", "train", limit=n).images)))
    w = N.init_weights(jax.random.key(0), pipe.spec)
    lat1 = N.layer_outputs(w[0], lat0, pipe.spec.layers[0], T)
    rows = []

    def timed(name, fn, *a, where=None, jit=True):
        layer = li + 1 if where is None else where
        where = f"layer {li + 1}" if where is None else where
        fn = jax.jit(fn) if jit else fn
        jax.block_until_ready(fn(*a))
        c0 = time.process_time()
        for _ in range(args.repeats):
            jax.block_until_ready(fn(*a))
        ms = 1e3 * (time.process_time() - c0) / args.repeats / n
        rows.append(dict(layer=layer, part=name, cpu_ms_per_image=round(ms, 3)))
        print(f"{where}  {name:<24}{ms:8.2f} CPU ms / image", flush=True)

    # the front end's parts, all images at once (as ConvPipeline.encode runs them)
    enc, images = pipe.spec.encoder(), jnp.asarray(data.load("mnist-embedded", "train", limit=n).images, jnp.float32)
    filtered = jax.jit(jax.vmap(lambda im: F.dog_filter(im, enc.kernels, enc.padding, enc.threshold)))(images)
    normalised = jax.jit(jax.vmap(lambda x: F.local_normalization(x, enc.norm_radius)))(filtered)
    timed("DoG filters", jax.vmap(lambda im: F.dog_filter(im, enc.kernels, enc.padding, enc.threshold)), images,
          where="front end")
    timed(f"local normalisation ({2 * enc.norm_radius + 1}x{2 * enc.norm_radius + 1} box)",
          jax.vmap(lambda x: F.local_normalization(x, enc.norm_radius)), filtered, where="front end")
    timed("latency (ranks)", lambda x: F.latency_ranks_batch(x, T), normalised, where="front end")
    timed("whole (as latency_batch)", enc.batched_latency(), images, where="front end", jit=False)

    for li, (lat, wl) in enumerate(((lat0, w[0]), (lat1, w[1]))):
        layer = pipe.spec.layers[li]
        kh = layer.kernel
        cols = np.asarray(jax.vmap(lambda l: E.patch_latencies(l, (kh, kh), layer.pad_in, T))(lat))  # (N, P, K)
        active = (cols < T).sum(-1)
        dens = float(np.mean(np.asarray(lat) < T))
        print(f"layer {li + 1}  input units that spike: {100 * dens:.1f} %; active entries per receptive field "
              f"(of {cols.shape[-1]}): mean {active.mean():.1f}, 99th percentile {np.percentile(active, 99):.0f}, "
              f"max {active.max()}", flush=True)
        rows.append(dict(layer=li + 1, input_density=round(dens, 4), active_per_field_mean=round(float(active.mean()), 1),
                         active_per_field_max=int(active.max()), field=int(cols.shape[-1])))

        def onehot(l, wl=wl, layer=layer):
            c = E.patch_latencies(l, (layer.kernel,) * 2, layer.pad_in, T)  # (P, K)
            oh = (c[None] == jnp.arange(T)[:, None, None]).astype(jnp.float32)  # (T, P, K)
            inc = jnp.einsum("tpk,fk->tfp", oh, wl.reshape(wl.shape[0], -1), precision=lax.Precision.HIGHEST)
            return jnp.cumsum(inc, axis=0) > layer.threshold

        timed("conv dot", lambda ls, wl=wl, layer=layer: lax.map(
            lambda l: L.conv_latency(l, wl, T, layer.pad_in) > layer.threshold, ls), lat)
        timed("conv one-hot events", lambda ls: lax.map(onehot, ls), lat)
        timed("first crossings (events)", lambda ls, wl=wl, layer=layer: lax.map(lambda l: E.first_crossing(
            E.patch_latencies(l, (layer.kernel,) * 2, layer.pad_in, T), wl.reshape(wl.shape[0], -1),
            layer.threshold, T)[1], ls), lat)
        for impl in ("dot", "events"):
            step = N.layer_train_step(layer._replace(conv_impl=impl), pipe.stdp, T)
            st0 = pipe.stdp.init(wl)
            timed(f"STDP step {impl}", lambda ls, step=step, st0=st0, wl=wl: lax.scan(
                lambda c, l: (step(*c, l), None), (wl, st0), ls)[0], lat)
        for what, chunk in (("one product per 64 images", 64), ("default chunks", None)):
            timed(f"inference, {what}", lambda ls, c=chunk, wl=wl, layer=layer, first=li == 0: N.layer_outputs(
                wl, ls, layer, T, chunk=c, min_features=P.ALONE_MIN_ROWS if first and c is None else 0), lat)
    layer, wl = pipe.spec.layers[0], w[0]
    pair = jnp.stack([wl, w[0] * 0.5])
    pots = lambda ls, wl, c, pad=0: N.map_images(  # noqa: E731  (chunks only where layer_outputs runs them)
        lambda l: L.conv_latency(l, wl, T, layer.pad_in, pad), ls, chunk=c, chunked=N.chunkable(layer, lat0))
    b64 = jax.jit(lambda ls: jax.vmap(lambda ww: pots(ls, ww, 64))(pair))(lat0)[0]
    chunked = jax.jit(lambda ls: jax.vmap(lambda ww: pots(ls, ww, N.INFERENCE_CHUNK))(pair))(lat0)[0]
    alone = jax.jit(lambda ls: pots(ls, wl, N.INFERENCE_CHUNK, P.ALONE_MIN_ROWS))(lat0)
    unpadded = jax.jit(lambda ls: pots(ls, wl, 64))(lat0)
    for what, other in (("the default chunks (2 seeds)", chunked), (f"one seed padded to {P.ALONE_MIN_ROWS} filters", alone),
                        ("one seed unpadded", unpadded)):
        diff = int(jnp.sum(b64 != other))
        flips = int(jnp.sum((b64 > layer.threshold) != (other > layer.threshold)))
        print(f"layer 1  potentials, one product of all images (2 seeds) vs {what}: {diff} of {b64.size} differ ({100 * diff / b64.size:.2f} %), "
              f"max {float(jnp.max(jnp.abs(b64 - other))):.2g}; spikes that differ: {flips}", flush=True)
        rows.append(dict(layer=1, rounding=f"one product (2 seeds) vs {what}", differ=diff, of=int(b64.size),
                         spikes_differ=flips))
    print(json.dumps(dict(images=n, rows=rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
