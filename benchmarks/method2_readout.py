"""How well does Method 2's spiking network read out weights that are the class templates themselves?

For each seed of ``supervised-stdp`` (its class triple, its first ``images_per_round`` training images
and its test images, as ``snnjax run supervised-stdp`` draws them) this sets every neuron's input weights
by hand to its class's mean training image scaled to an L2 norm ``a_j`` (``norm·(1 ∓ spread)`` graded
linearly over a segment's neurons, as ``segment-template`` does), then tests the network exactly as the
experiment does (fixed threshold, sequential test, strict tie rule) and prints accuracy, silent test
images and ties. The class-mean template (cosine) baseline is printed beside it (and the same templates
compared at an equal column sum, Diehl & Cook's normalisation, with no spikes), and, with ``--ideal``,
a perfect integrator of the same Poisson input (``argmax_c w_c·counts`` over a window of ``T`` ms): what
the input noise alone costs.

    python benchmarks/method2_readout.py --seeds 8 --norms 0.2,0.3 --spreads 0,0.5 --ideal

``--classifiers`` runs no network: it prints what non-spiking classifiers that a local rule could
approximate get on each seed's images (one pass over the training images in their order): the
class-mean template; templates with a perceptron-like correction (an image that a wrong class's
template scores at least as high as its own removes ``eta`` times the image from that template's
count, as ``segment-template``'s ``eta_wrong`` does on a wrong neuron's spike); competitive
prototypes (``K`` per class, the first ``K`` images of a class start them, every later image is added
to its class's prototype of largest cosine: online k-means inside the label's class, what label-gated
potentiation of the segment's best-matching neuron would learn); and 1-NN (Euclidean, cosine).

    python benchmarks/method2_readout.py --seeds 32 --classifiers

Weights in the thesis' units (its initial weights ``U(0, 0.05)`` have L2 norm ≈ 0.8).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from snnjax.plugins import get_registry
from snnjax.seeds import seed_keys
from snnjax_plugins import network as net
from snnjax_plugins.experiments import supervised_stdp as sx
from snnjax_plugins.readout import baselines_per_seed


def class_templates(train_x, train_seg, n_train: int, n_classes: int) -> np.ndarray:
    """``[S, 784, n_classes]`` class-mean images of each seed's first ``n_train`` training images, unit L2 norm."""
    out = []
    for x, seg in zip(train_x[:, :n_train].astype(np.float64), train_seg[:, :n_train]):
        m = np.stack([x[seg == c].mean(0) for c in range(n_classes)], axis=1)
        out.append(m / np.linalg.norm(m, axis=0))
    return np.stack(out)


def _unit(m: np.ndarray) -> np.ndarray:
    """Columns scaled to unit L2 norm (zero columns stay zero)."""
    return m / np.maximum(np.linalg.norm(m, axis=0, keepdims=True), 1e-12)


def perceptron_templates(x: np.ndarray, y: np.ndarray, n_classes: int, eta: float) -> np.ndarray:
    """``[784, C]`` class counts after one pass: ``H_y += x``, then every other class whose (non-empty)
    cosine template scores ``x`` at least as high as ``H_y`` loses ``eta·x`` (clipped at 0)."""
    h = np.zeros((x.shape[1], n_classes))
    for xi, c in zip(x, y):
        h[:, c] += xi
        score = xi @ _unit(h)
        for k in range(n_classes):
            if k != c and h[:, k].any() and score[k] >= score[c]:
                h[:, k] = np.maximum(h[:, k] - eta * xi, 0)
    return h


def competitive_prototypes(x: np.ndarray, y: np.ndarray, n_classes: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``([784, P], labels[P])``: up to ``k`` prototypes per class, started by the class's first ``k`` images;
    every later image of the class is added to the prototype of largest cosine with it."""
    protos, labels = [], []
    for c in range(n_classes):
        xc = x[y == c]
        p = xc[:k].copy()
        for xi in xc[k:]:
            p[np.argmax(_unit(p.T).T @ xi)] += xi
        protos.append(p)
        labels += [c] * len(p)
    return np.concatenate(protos).T, np.asarray(labels)


def print_classifiers(data, n_train: int, n_classes: int) -> None:
    """Per-seed accuracies (mean ± std over seeds, and the mean per-seed gap to the template)."""
    rows: dict[str, list[float]] = {}
    for s in range(data.train_x.shape[0]):
        x, y = data.train_x[s, :n_train].astype(np.float64), data.train_seg[s, :n_train]
        t, ty = data.test_x[s].astype(np.float64), data.test_seg[s]
        h = np.stack([x[y == c].sum(0) for c in range(n_classes)], axis=1)
        acc = {"class-mean template (cosine)": np.argmax(t @ _unit(h), 1)}
        for eta in (0.5, 1.0, 2.0):
            acc[f"template + perceptron correction, eta {eta}"] = np.argmax(t @ _unit(perceptron_templates(x, y, n_classes, eta)), 1)
        for k in (2, 4, 8, 16):
            p, lab = competitive_prototypes(x, y, n_classes, k)
            acc[f"competitive prototypes, {k} per class (cosine)"] = lab[np.argmax(t @ _unit(p), 1)]
        acc["1-NN, Euclidean"] = y[np.argmin(((t[:, None, :] - x[None]) ** 2).sum(-1), 1)]
        acc["1-NN, cosine"] = y[np.argmax(t @ _unit(x.T), 1)]
        for name, pred in acc.items():
            rows.setdefault(name, []).append(100 * np.mean(pred == ty))
    base = np.asarray(rows["class-mean template (cosine)"])
    for name, v in rows.items():
        v = np.asarray(v)
        print(f"{name:<50s} {v.mean():6.2f} ± {v.std():4.2f} %   gap to the template {np.mean(v - base):+.2f}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--norms", default="0.2,0.3", help="comma-separated mean L2 norms of a neuron's weights")
    p.add_argument("--spreads", default="0,0.5", help="comma-separated spreads (0: equal norms)")
    p.add_argument("--n-exc", type=int, default=30)
    p.add_argument("--ideal", action="store_true", help="also the perfect integrator of the Poisson input")
    p.add_argument("--classifiers", action="store_true", help="no network: non-spiking classifiers a local rule "
                   "could approximate (perceptron-corrected templates, competitive prototypes, 1-NN)")
    p.add_argument("--weights", metavar="RUN_DIR", help="instead of hand-set templates, the weights a supervised-stdp "
                   "run learned (its weights.npz, seeds from 0): how close they are to the class means, how they "
                   "classify as cosine templates, and how the network reads them out (from a fresh network state)")
    args = p.parse_args(argv)

    reg = get_registry()
    cfg = dict(sx.DEFAULTS)
    cfg.update(n_rounds=1, adaptive_threshold=False, rule="segment-template", n_exc=args.n_exc)
    sx.validate(cfg)
    netcfg, rule = sx.build_model(cfg, reg)
    S, C, B = args.seeds, cfg["n_classes"], cfg["images_per_round"]
    data = sx.prepare_data(cfg, list(range(S)), reg)
    base = baselines_per_seed(data.train_x, data.train_seg, data.test_x, data.test_seg, n_train=B)
    template = base["baseline_template_accuracy"]
    print(f"seeds 0–{S - 1}, classes {data.classes.tolist()}")
    print(f"class-mean template (cosine): {template.mean():.1f} ± {template.std():.1f} %")
    if args.classifiers:
        print_classifiers(data, B, C)
        return
    templ = class_templates(data.train_x, data.train_seg, B, C)
    l1 = templ / templ.sum(axis=1, keepdims=True)  # the same templates at an equal column *sum* (D&C's normalisation)
    acc_l1 = 100 * np.mean(np.argmax(np.einsum("snp,spc->snc", data.test_x.astype(np.float64), l1), -1) == data.test_seg, 1)
    print(f"class-mean template at an equal L1 norm (no spikes): {acc_l1.mean():.1f} ± {acc_l1.std():.1f} %")
    if args.ideal:
        rng = np.random.default_rng(0)
        for window_ms in (350, 20):
            acc = []
            for s in range(S):
                x = data.test_x[s].astype(np.float64)
                counts = rng.poisson(x / 255 * netcfg.max_rate_hz * window_ms / 1000)
                acc.append(100 * np.mean(np.argmax(counts @ templ[s], 1) == data.test_seg[s]))
            print(f"ideal integrator of the Poisson input over {window_ms} ms: {np.mean(acc):.1f} ± {np.std(acc):.1f} %")

    keys = seed_keys(cfg["seed"], S)
    init_keys, run_keys = jax.vmap(lambda k: jax.random.split(k, 2))(keys).transpose(1, 0, 2)
    state = jax.jit(jax.vmap(lambda k: net.init_network(k, netcfg, rule)))(init_keys)
    k_test = jax.vmap(lambda k: jax.random.fold_in(k, 1))(run_keys)  # the key of the first test, as the run's
    test = jax.jit(jax.vmap(lambda st, x, k: net.present_many(st, x, k, netcfg, rule, learn=0.0,
                                                              fixed_v2_mv=netcfg.exc.v_th_mv, plastic=False)[1].exc_counts))
    per = netcfg.n_exc // C

    def read_out(w):
        counts = np.asarray(test(state._replace(w=jnp.asarray(w, jnp.float32)), jnp.asarray(data.test_x), k_test))
        seg = counts.reshape(*counts.shape[:-1], C, per).sum(-1)
        top = seg.max(-1)
        tie = ((seg == top[..., None]).sum(-1) > 1) & (top > 0)
        pred = np.where(tie | (top == 0), -1, seg.argmax(-1))
        acc = 100 * np.mean(pred == data.test_seg, axis=1)
        return (f"{acc.mean():.1f} ± {acc.std():.1f} %, silent {100 * np.mean(top == 0):.1f} %, ties {100 * np.mean(tie):.1f} %, "
                f"{counts.mean():.2f} spikes per neuron and test image, gap to the template {np.mean(acc - template):+.1f}")

    if args.weights:
        import pathlib

        w = np.load(pathlib.Path(args.weights) / "weights.npz")["W"][:S].astype(np.float64)
        if w.shape[1:] != (netcfg.n_input, netcfg.n_exc):
            raise SystemExit(f"error: {args.weights}/weights.npz holds weights {w.shape[1:]}, expected "
                             f"{(netcfg.n_input, netcfg.n_exc)} (set --n-exc)")
        norms = np.linalg.norm(w, axis=1)  # [S, n_exc]
        cos = np.einsum("spj,spj->sj", w / norms[:, None, :], np.repeat(templ, per, axis=2))
        spread = (norms.reshape(S, C, per).std(-1) / norms.reshape(S, C, per).mean(-1)).mean()
        seg_w = w.reshape(S, netcfg.n_input, C, per).sum(-1)
        seg_w /= np.linalg.norm(seg_w, axis=1, keepdims=True)
        as_templ = 100 * np.mean(np.argmax(np.einsum("snp,spc->snc", data.test_x.astype(np.float64), seg_w), -1)
                                 == data.test_seg, 1)
        print(f"{args.weights}: cosine of each neuron's weights with its class mean {cos.mean():.3f} "
              f"(lowest seed {cos.mean(1).min():.3f}); norms within a segment differ by {100 * spread:.1f} % (std/mean)")
        print(f"  its segments' summed weights as cosine templates (no spikes): {as_templ.mean():.1f} ± {as_templ.std():.1f} %")
        print(f"  read out by the network: {read_out(w)}", flush=True)
        return
    for norm in [float(v) for v in args.norms.split(",")]:
        for spread in [float(v) for v in args.spreads.split(",")]:
            scale = norm * np.linspace(1 - spread, 1 + spread, per)
            w = (np.repeat(templ, per, axis=2) * np.tile(scale, C)[None, None, :]).astype(np.float32)
            t0 = time.time()
            print(f"norm {norm}, spread {spread}: {read_out(w)} ({time.time() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
