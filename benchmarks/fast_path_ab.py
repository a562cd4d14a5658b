#!/usr/bin/env python
"""The network's deferred (fast) plasticity path against its general path, side by side.

    python benchmarks/fast_path_ab.py                       # every workload below, 4 seeds, 3 images
    python benchmarks/fast_path_ab.py --rules method3 --seeds 8 --images 5 --repeats 3

Both paths give the same spikes (``tests/test_fast_path.py``); this prints how much faster the
deferred one trains. Workloads (training, learning on, vmapped seeds, one process):

* ``method2``: the thesis network (30 neurons, dt 0.1 ms) with segment-supervised STDP / All-LTD;
* ``method3``: the same, chained with the lazy use-it-or-lose-it decay (the Method 3 experiment);
* ``dc15``: Diehl & Cook 2015, N = 100, dt 0.5 ms, D&C STDP;
* ``symmetric``: the thesis network with a *third-party* rule, ``symmetric-stdp`` from the example
  package ``examples/snnjax-symmetric-stdp`` (imported from the source tree when it is not
  installed), which declares its fast form (``snnjax.deferred.DeferredTrace``).

Each workload is compiled once per path; then the two paths run alternately ``--repeats`` times
(so both see the same background load) and the script prints the median aggregate images/s of each
and their ratio. Images: the first ``--images`` digits of the embedded MNIST subset.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

RULES = ("method2", "method3", "dc15", "symmetric")


def workload(name: str):
    from snnjax.plasticity import chain
    from snnjax_plugins import network as net
    from snnjax_plugins.regularizers import use_it_or_lose_it
    from snnjax_plugins.rules import segment_supervised, stdp_dc15

    if name == "dc15":
        return net.dc15_config(100, min_spikes=0), stdp_dc15(), None
    if name == "symmetric":
        try:
            import snnjax_symmetric_stdp as example
        except ImportError:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "snnjax-symmetric-stdp"))
            import snnjax_symmetric_stdp as example
        return net.thesis_config(), example.symmetric_stdp(), None
    rule = segment_supervised(n_classes=3)
    if name == "method3":
        rule = chain(rule, use_it_or_lose_it())
    return net.thesis_config(), rule, 3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rules", default=",".join(RULES), help=f"comma list of {', '.join(RULES)}")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--images", type=int, default=3, help="training images per timed call")
    ap.add_argument("--repeats", type=int, default=2, help="timed calls per path (alternating)")
    args = ap.parse_args()
    names = [r for r in args.rules.split(",") if r]
    unknown = [r for r in names if r not in RULES]
    if unknown or args.seeds < 1 or args.images < 1 or args.repeats < 1:
        ap.error(f"--rules from {', '.join(RULES)} (got {unknown}); --seeds, --images, --repeats ≥ 1")

    import jax
    import jax.numpy as jnp
    import numpy as np

    from snnjax import data
    from snnjax_plugins import network as net
    from snnjax_plugins.rules import segment_gate

    train = data.load("mnist-embedded", "train")
    imgs = jnp.asarray(train.images[: args.images].reshape(args.images, -1), jnp.float32)
    labels = np.asarray(train.labels[: args.images])
    S = args.seeds
    print(f"# {S} seeds, {args.images} images per call, {args.repeats} alternating calls per path, "
          f"jax {jax.__version__} ({jax.default_backend()})")
    print(f"{'workload':<10}{'deferred img/s':>16}{'general img/s':>15}{'deferred / general':>20}")
    for name in names:
        cfg0, rule, n_classes = workload(name)
        gates = (jnp.stack([segment_gate(int(lab) % n_classes, cfg0.n_exc, n_classes) for lab in labels])
                 if n_classes else None)
        runs = {}
        for mode in ("auto", "reference"):
            cfg = dataclasses.replace(cfg0, plasticity=mode)
            st = jax.jit(jax.vmap(lambda k, cfg=cfg: net.init_network(k, cfg, rule)))(
                jax.random.split(jax.random.key(0), S))
            f = jax.jit(jax.vmap(lambda s, k, cfg=cfg: net.present_many(s, imgs, k, cfg, rule, learn=1.0, gates=gates)))
            keys = jax.random.split(jax.random.key(1), S)
            jax.block_until_ready(f(st, keys))  # compile
            runs[mode] = (f, st, keys, [])
        for _ in range(args.repeats):
            for f, st, keys, rates in runs.values():
                t0 = time.perf_counter()
                jax.block_until_ready(f(st, keys))
                rates.append(args.images * S / (time.perf_counter() - t0))
        fast, slow = (statistics.median(runs[m][3]) for m in ("auto", "reference"))
        print(f"{name:<10}{fast:>16.1f}{slow:>15.1f}{fast / slow:>19.2f}×", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
