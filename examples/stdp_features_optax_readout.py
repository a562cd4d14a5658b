"""STDP features + a readout trained by gradient with optax (snnjax inside your own JAX code).

1. Train the thesis network (Method 2: supervised STDP + All-LTD segments) on a
   few hundred embedded MNIST images of three classes, for 4 seeds at once
   (``jax.vmap`` over keys).
2. Present train and test images with learning off; the excitatory spike counts
   are the features.
3. Fit a softmax readout on the counts with ``optax.adam`` and ``jax.grad`` and
   compare it with the network's own rule (segment with most spikes).

Run: ``python examples/stdp_features_optax_readout.py`` (a few minutes on a laptop CPU).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax

from snnjax import data
from snnjax.plugins import get_registry
from snnjax.seeds import run_seeds, seed_keys
from snnjax_plugins import network as net
from snnjax_plugins.rules import segment_gate

CLASSES = (0, 1, 7)


def load(split: str, n: int):
    ds = data.load("mnist-embedded", split, classes=list(CLASSES), shuffle_seed=0, limit=n)
    seg = np.searchsorted(np.array(CLASSES), ds.labels)  # CLASSES is sorted: label -> segment index
    return jnp.asarray(ds.images.reshape(len(seg), -1)), jnp.asarray(seg, jnp.int32)


def features(n_train: int, n_test: int, n_seeds: int, dt_ms: float):
    rule = get_registry().create("rule", "segment-supervised", n_classes=len(CLASSES))
    cfg = net.thesis_config(dt_ms=dt_ms)
    x_tr, y_tr = load("train", n_train)
    x_te, y_te = load("test", n_test)

    def one_seed(key, x_tr, y_tr, x_te):
        k_init, k_train, k_f1, k_f2 = jax.random.split(key, 4)
        state = net.init_network(k_init, cfg, rule)
        gates = jax.vmap(lambda s: segment_gate(s, cfg.n_exc, len(CLASSES)))(y_tr)
        state, _ = net.present_many(state, x_tr, k_train, cfg, rule, learn=1.0, gates=gates)
        probe = lambda x, k: net.present(state, x, k, cfg, rule, learn=0.0, fixed_v2_mv=-52.0)[1].exc_counts  # noqa: E731
        f_tr = jax.vmap(probe)(x_tr, jax.random.split(k_f1, x_tr.shape[0]))
        f_te = jax.vmap(probe)(x_te, jax.random.split(k_f2, x_te.shape[0]))
        return f_tr, f_te

    f_tr, f_te = run_seeds(one_seed, seed_keys(0, n_seeds), x_tr, y_tr, x_te)
    return f_tr, y_tr, f_te, y_te


def fit_readout(key, f_tr, y_tr, n_classes: int, steps: int = 500):
    """Softmax regression on log spike counts, trained with optax.adam."""
    x = jnp.log1p(f_tr.astype(jnp.float32))
    params = {"w": 0.01 * jax.random.normal(key, (x.shape[1], n_classes)), "b": jnp.zeros(n_classes)}
    opt = optax.adam(0.05)

    def loss(p):
        logits = x @ p["w"] + p["b"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, y_tr).mean()

    def step(carry, _):
        p, s = carry
        g = jax.grad(loss)(p)
        updates, s = opt.update(g, s, p)
        return (optax.apply_updates(p, updates), s), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
    return params


def main(n_train: int = 300, n_test: int = 150, n_seeds: int = 4, dt_ms: float = 0.5) -> dict[str, np.ndarray]:
    f_tr, y_tr, f_te, y_te = features(n_train, n_test, n_seeds, dt_ms)
    keys = seed_keys(1, n_seeds)
    params = jax.vmap(lambda k, f: fit_readout(k, f, y_tr, len(CLASSES)))(keys, f_tr)
    logits = jnp.einsum("snf,sfc->snc", jnp.log1p(f_te.astype(jnp.float32)), params["w"]) + params["b"][:, None]
    readout_acc = 100 * np.mean(np.asarray(jnp.argmax(logits, -1) == y_te), axis=1)
    seg_counts = f_te.reshape(*f_te.shape[:2], len(CLASSES), -1).sum(-1)
    rule_acc = 100 * np.mean(np.asarray(jnp.argmax(seg_counts, -1) == y_te), axis=1)
    return {"segment_rule": rule_acc, "optax_readout": readout_acc}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-train", type=int, default=300)
    ap.add_argument("--n-test", type=int, default=150)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--dt-ms", type=float, default=0.5)
    a = ap.parse_args()
    for name, acc in main(a.n_train, a.n_test, a.seeds, a.dt_ms).items():
        print(f"{name:14s} test accuracy {acc.mean():.1f} ± {acc.std():.1f} % over {len(acc)} seeds")
