#!/usr/bin/env python
"""What one noisy Langevin step costs per seed: the weight noise and the per-weight quantile update.

    python benchmarks/langevin_step.py                      # the Mozafari decision layer, 4 quantiles
    python benchmarks/langevin_step.py --weights 250,30,3,3 --probs 0.1,0.9

The ``continual`` experiment's ``langevin-ranges`` method adds ``σ·N(0, 1)`` to every weight of a
layer after each image (``snnjax_plugins.continual_transforms.langevin_noise``) and feeds every
``langevin_every``-th weight vector to one streaming P² estimator per quantile
(``snnjax.quantiles.quantiles_update``). This times both on one seed's weights, each compiled once
and run ``--repeats`` times in a ``lax.scan`` (steady state: every estimator past its first five
observations), and prints CPU ms per call. Each is timed beside a reference, alternately: the noise
as the transform draws it (``snnjax.threefry.normal``) and with ``jax.random.normal`` in its place;
the quantile update in blocks (the default) and over the whole arrays in one pass. Each pair is
checked to give the same bits. A noisy epoch of ``n`` images costs about
``n · (noise + step) + n / langevin_every · quantiles`` per seed (the decision step itself is
≈ 1 ms, see ``docs/performance.md``).
"""

from __future__ import annotations

import argparse
import json
import time


def _ints(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"every size must be >= 1, got {text!r}")
    return shape


def _probs(text: str) -> tuple[float, ...]:
    try:
        probs = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated probabilities, got {text!r}") from None
    if not all(0 < p < 1 for p in probs):
        raise argparse.ArgumentTypeError(f"every probability must be strictly between 0 and 1, got {text!r}")
    return probs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", type=_ints, default=(200, 250, 5, 5),
                    help="the layer's weight shape (default 200,250,5,5: the Mozafari decision layer, 1.25 M)")
    ap.add_argument("--probs", type=_probs, default=(0.1, 0.25, 0.75, 0.9),
                    help="the quantiles tracked (default 0.1,0.25,0.75,0.9: Q1/Q3 and D10/D90)")
    ap.add_argument("--sigma", type=float, default=4e-4, help="noise std (default 4e-4, the thesis)")
    ap.add_argument("--repeats", type=int, default=10, help="calls per timing (default 10)")
    ap.add_argument("--rounds", type=int, default=2, help="timings per part, alternately (default 2)")
    args = ap.parse_args(argv)
    for name in ("repeats", "rounds"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be >= 1")

    import jax
    import jax.numpy as jnp
    import numpy as np

    from snnjax.quantiles import quantiles_init, quantiles_update
    from snnjax_plugins.continual_transforms import langevin_noise
    from snnjax_plugins.conv.stdp import ConvActivity

    shape, probs, n = args.weights, args.probs, args.repeats
    w0 = jax.random.uniform(jax.random.key(0), shape, jnp.float32, 0.2, 0.8)
    noise = langevin_noise(jax.random.key(1), args.sigma)
    update = ConvActivity(None, None, None, jnp.int32(0))  # a reward/punish step: noise is added

    @jax.jit
    def noisy(w, key):
        return jax.lax.scan(lambda c, _: (noise.update(*c, update), None), (w, key), None, length=n)[0]

    def reference_update(w, key, activity):  # the transform as it was, drawing with jax.random.normal
        key, sub = jax.random.split(key)
        noisy = jnp.clip(w + args.sigma * jax.random.normal(sub, w.shape, w.dtype), 0.2, 0.8)
        return jnp.where(jnp.asarray(activity.decision) >= 0, noisy, w), key

    @jax.jit
    def noisy_reference(w, key):
        return jax.lax.scan(lambda c, _: (reference_update(*c, update), None), (w, key), None, length=n)[0]

    @jax.jit
    def observe(qs, ws):
        return jax.lax.scan(lambda q, w: (quantiles_update(q, w, probs), None), qs, ws)[0]

    @jax.jit
    def observe_whole(qs, ws):  # the reference: every array in one pass, no blocks
        return jax.lax.scan(lambda q, w: (quantiles_update(q, w, probs, block=w.size), None), qs, ws)[0]

    qs = jax.jit(lambda w: jax.lax.scan(lambda q, i: (quantiles_update(q, w * (1 + 0.01 * i), probs), None),
                                        quantiles_init(shape, probs), jnp.arange(5, dtype=jnp.float32))[0])(w0)
    snapshots = w0 + args.sigma * jax.random.normal(jax.random.key(2), (n,) + shape)  # n weight vectors
    quantiles = f"quantiles ({len(probs)})"
    parts = (("noise", noisy, (w0, noise.init(w0))), ("noise, jax.random.normal", noisy_reference, (w0, noise.init(w0))),
             (quantiles, observe, (qs, snapshots)), (f"{quantiles}, whole arrays", observe_whole, (qs, snapshots)))
    outs = [jax.block_until_ready(fn(*a)) for _, fn, a in parts]  # compiles every part
    if not np.array_equal(np.asarray(outs[0][0]).view(np.uint32), np.asarray(outs[1][0]).view(np.uint32)):
        print("the noise differs from jax.random.normal's", flush=True)
        return 1
    if not all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(jax.tree.leaves(outs[2]), jax.tree.leaves(outs[3]))):
        print("the quantile update in blocks differs from the whole-array update", flush=True)
        return 1
    times = {part: [] for part, _, _ in parts}
    for _ in range(args.rounds):
        for part, fn, a in parts:
            c0 = time.process_time()
            jax.block_until_ready(fn(*a))
            times[part].append(1e3 * (time.process_time() - c0) / n)
    rows = [dict(part=part, cpu_ms=[round(v, 2) for v in ms]) for part, ms in times.items()]
    for part, ms in times.items():
        print(f"{part:<26}" + "".join(f"{v:9.2f}" for v in ms) + " CPU ms per call", flush=True)
    noise_speedup = min(times["noise, jax.random.normal"]) / min(times["noise"])
    quantiles_speedup = min(times[f"{quantiles}, whole arrays"]) / min(times[quantiles])
    print(f"noise: {noise_speedup:.2f}× the jax.random.normal draw; quantiles: {quantiles_speedup:.2f}× the "
          f"whole-array update (both the same bits)", flush=True)
    print(json.dumps(dict(weights=list(shape), probs=list(probs), repeats=n, rounds=args.rounds, rows=rows,
                          noise_speedup=round(noise_speedup, 2), quantiles_speedup=round(quantiles_speedup, 2))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
