#!/usr/bin/env python
"""Decision-layer R-STDP epochs through the rule's row-local form against its full update, side by side.

    python benchmarks/decision_rows.py                     # Mozafari decision layer, 4 seeds, 400 images
    python benchmarks/decision_rows.py --seeds 8 --images 1000 --rounds 3
    python benchmarks/decision_rows.py --tiny              # smoke run on a tiny network (seconds)

R-STDP changes only the winner's kernel (1 of the decision layer's 200) after each image. Its
declared :class:`snnjax.plasticity.RowLocal` form, and those of the transforms ``continual`` chains
after it (``clip_per_weight`` for Langevin ranges, ``freeze`` for freeze-largest), let
:meth:`ConvPipeline.decision_epoch` read and write that kernel only; ``row_local=False`` runs the full
update, which reads and writes all 1.25 M weights (and the ranges or mask) per image and seed. This
times one epoch each way, alternately, ``--rounds`` times, on the same weights, first-spike maps and
labels, checks that both give the same bits, and prints CPU ms per image and seed and the ratio.

The first-spike maps are random (a quarter of the inputs spike, at uniform times), sized as the
network's layer-2 output; the decision layer's forward pass does not depend on their values.
"""

from __future__ import annotations

import argparse
import json
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=4, help="vmapped seeds (default 4)")
    ap.add_argument("--images", type=int, default=400, help="images per epoch (default 400)")
    ap.add_argument("--rounds", type=int, default=2, help="timed epochs per form and rule (default 2)")
    ap.add_argument("--tiny", action="store_true", help="a tiny network (4 × 4 images, 8 decision maps): a smoke run")
    args = ap.parse_args(argv)
    for name in ("seeds", "images", "rounds"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be >= 1")

    import jax
    import jax.numpy as jnp
    import numpy as np

    from snnjax.plasticity import chain, clip_per_weight, freeze
    from snnjax_plugins.conv import networks as N
    from snnjax_plugins.conv import pipeline as P

    if args.tiny:
        spec = N.NetworkSpec("tiny", ((3, 1.0, 2.0), (3, 2.0, 1.0)), 1, 4,
                             (N.ConvLayerSpec(2, 4, 3, 2.0, 2, 1, pad_in=1, pool=(2, 2, 0)),
                              N.ConvLayerSpec(4, 6, 2, 1.0, 2, 0, pad_in=0, pool=(2, 2, 1))),
                             N.ConvLayerSpec(6, 8, 2, None, 1, 0, pad_in=1), n_classes=2)
    else:
        spec = N.mozafari2019()
    classes = 2 if args.tiny else 10
    side = 8 if args.tiny else 28
    pipe = P.ConvPipeline(spec, classes, None, dict(batch_size=1000))
    S, n, T = args.seeds, args.images, spec.timesteps
    keys = jax.random.split(jax.random.PRNGKey(0), S)
    state = pipe.init(keys)
    shape = pipe.features(state.w1, state.w2, pipe.encode(np.zeros((1, side, side), np.uint8))).shape[-3:]
    rng = np.random.default_rng(0)
    lat = np.where(rng.random((n, *shape)) < 0.25, rng.integers(0, T, (n, *shape)), T).astype(np.uint8)
    labels = rng.integers(0, classes, n).astype(np.int32)
    w3 = jnp.clip(state.w3, 0.2, 0.8)  # as after the first epoch: every kernel within R-STDP's bounds
    rule = pipe.rstdp_rule()
    st = jax.vmap(rule.init)(w3)
    low, high = jnp.clip(w3 - 0.05, 0.2, 0.8), jnp.clip(w3 + 0.05, 0.2, 0.8)
    mask = jax.random.uniform(jax.random.PRNGKey(1), w3.shape) < 0.25
    cases = [
        ("r-stdp", dict(), st),
        ("r-stdp + clip_per_weight (langevin-ranges)",
         dict(make_rule=lambda lo, hi: chain(rule, clip_per_weight(lo, hi)), rule_args=(low, high)), (st, ())),
        ("r-stdp + freeze (freeze-largest)", dict(make_rule=lambda m: chain(rule, freeze(m)), rule_args=(mask,)),
         (st, ())),
    ]
    print(f"decision layer {tuple(w3.shape[1:])}, {S} seeds, {n} images per epoch, CPU ms per image and seed",
          flush=True)
    rows = []
    for label, kw, st0 in cases:
        name = label.split(" (")[0].replace(" + ", "-")
        outs, ms = {}, {True: [], False: []}
        for rl in (True, False):  # compile both
            outs[rl] = jax.block_until_ready(pipe.decision_epoch(keys, w3, st0, lat, labels, name=name,
                                                                 row_local=rl, **kw))
        for _ in range(args.rounds):
            for rl in (True, False):
                c0 = time.process_time()
                jax.block_until_ready(pipe.decision_epoch(keys, w3, st0, lat, labels, name=name, row_local=rl, **kw))
                ms[rl].append(1e3 * (time.process_time() - c0) / (n * S))
        same = all(np.array_equal(np.asarray(a), np.asarray(b))
                   for a, b in zip(jax.tree.leaves(outs[True]), jax.tree.leaves(outs[False])))
        if not same:
            print(f"{label}: the two forms differ", flush=True)
            return 1
        fast, full = min(ms[True]), min(ms[False])
        rows.append(dict(rule=label, row_local_ms=[round(v, 3) for v in ms[True]],
                         update_ms=[round(v, 3) for v in ms[False]], ratio=round(full / fast, 2)))
        print(f"{label:<44} row-local {fast:6.3f}  full update {full:6.3f}  → {full / fast:5.2f}× (same bits)",
              flush=True)
    print(json.dumps(dict(network=spec.name, seeds=S, images=n, rounds=args.rounds, rows=rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
