"""benchmarks/run.py: the worker still drives the engine, the tables and ratios, the errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "benchmarks" / "run.py"


def _run(*args, timeout=300):
    return subprocess.run([sys.executable, str(RUN), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


# The smoke tests below share ONE subprocess (one interpreter start and one JAX import for all of them):
# it runs each script as ``__main__`` with its argv and records exit code, stdout and stderr per case.
_DRIVER = """
import contextlib, io, json, runpy, sys
cases = json.loads(sys.argv[1])
out = {}
for name, (script, argv) in cases.items():
    so, se, rc = io.StringIO(), io.StringIO(), 0
    sys.argv = [script, *argv]
    with contextlib.redirect_stdout(so), contextlib.redirect_stderr(se):
        try:
            runpy.run_path(script, run_name="__main__")
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else (print(e.code, file=sys.stderr) or 1))
    out[name] = {"returncode": rc, "stdout": so.getvalue(), "stderr": se.getvalue()}
print("@@RESULTS@@" + json.dumps(out))
"""

SMOKE = {
    "bad_cases": (RUN, ["--cases", "dc15:100", "--no-conv", "--no-numpy", "--no-brian2", "--no-bindsnet"]),
    "missing_scripts": (RUN, ["--bench-dir", "/nonexistent/bench-dir", "--cases", "dc15:100:1", "--no-conv"]),
    "worker": (RUN, ["_worker", "--net", "dc15", "--n", "10", "--seeds", "2", "--chunk", "1", "--chunks", "1",
                     "--cpu", "0"]),
    "fast_path_ab": (ROOT / "benchmarks" / "fast_path_ab.py", ["--rules", "dc15", "--seeds", "1", "--images", "1",
                                                               "--repeats", "1"]),
    "fast_path_ab_bad": (ROOT / "benchmarks" / "fast_path_ab.py", ["--rules", "dc16"]),
}


@pytest.fixture(scope="module")
def smoke():
    cases = {k: (str(script), argv) for k, (script, argv) in SMOKE.items()}
    p = subprocess.run([sys.executable, "-c", _DRIVER, json.dumps(cases)], capture_output=True, text=True,
                       timeout=900, cwd=ROOT)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("@@RESULTS@@")), None)
    assert line is not None, f"the smoke driver failed (rc={p.returncode}):\n{p.stderr[-3000:]}"
    return {k: subprocess.CompletedProcess([k], v["returncode"], v["stdout"], v["stderr"])
            for k, v in json.loads(line[len("@@RESULTS@@"):]).items()}


def _snn(n, seeds, ips, first100=None, run=None):
    r = dict(tool="snnjax", net="dc15", n_exc=n, seeds=seeds, images_per_sec_per_seed=ips, ips_min=ips, ips_max=ips,
             images_per_sec_aggregate=ips * seeds, compile_s=5.0, first100_s=first100, peak_rss_mb=400.0,
             state_mb_per_seed=0.35, xla_temp_mb=1.0, mean_exc_spikes_per_image=18.0, dropped_events=[0, 0, 0],
             backend="cpu")
    if run:
        r["run"] = run
    return r


def test_tables_ratios_and_plot_from_json(tmp_path):
    blob = dict(
        meta=dict(backend="cpu", commit="abc1234", machine="test", date="today"),
        results=[_snn(100, 1, 50.0, first100=20.0), _snn(100, 8, 10.0), _snn(100, 1, 30.0, first100=30.0, run="after references"),
                 dict(_snn(100, 8, 15.0), tool="snnjax-per-core", processes=2)],
        references=[dict(tool="brian2-cpp_standalone", n_exc=100, images_per_sec=20.0, setup_s=60.0, first100_s=100.0,
                         codegen_compile_s=55.0, peak_rss_mb=150.0, mean_exc_spikes_per_image=18.0, images=99)],
        conv=[],
    )
    path = tmp_path / "r.json"
    path.write_text(json.dumps(blob))
    png, md = tmp_path / "p.png", tmp_path / "t.md"
    p = _run("--from-json", str(path), "--plot", str(png), "--markdown", str(md))
    assert p.returncode == 0, p.stderr
    line = next(ln for ln in p.stdout.splitlines() if ln.startswith("brian2-cpp_standalone") and "×" in ln)
    # single seed: mean of the runs before and after the references, (50 + 30) / 2 = 40 → 2.00×;
    # best aggregate: 8 seeds in 2 pinned processes, 8 × 15 = 120 → 6.00× (one process: 8 × 10 = 80)
    assert "40.0" in line and "2.00×" in line and "120.0 (8, 2 proc)" in line and "6.00×" in line, line
    assert "snnjax 25.0 s" in p.stdout and "0.25 of its time" in p.stdout
    # aggregate over 8 seeds against the (first) single-seed run, as one process and per core
    assert "8: 1.60×" in p.stdout and "8, 2 proc: 2.40×" in p.stdout
    assert png.is_file() and png.stat().st_size > 10_000
    table = md.read_text()
    assert "| brian2-cpp_standalone | 100 | 20.00 | 40.0 (50.0, 30.0) | **2.00×** | 120.0 (8, 2 proc) | **6.00×** |" in table, table
    assert "| DC15 [snnjax-per-core] | 100 | 8, 2 proc | 15.00 (15.00–15.00) | 120.0 | 2.40× |" in table, table
    assert "| 100 | 25.0 (20.0, 30.0) | 100.0 (55.0) | **0.25** |" in table, table


def test_missing_reference_scripts_is_a_clear_error(smoke):
    p = smoke["missing_scripts"]
    assert p.returncode != 0
    assert "not found in" in p.stderr and "--bench-dir" in p.stderr and "--no-brian2" in p.stderr


def test_bad_cases_is_a_clear_error(smoke):
    p = smoke["bad_cases"]
    assert p.returncode != 0 and "net:N:seeds" in p.stderr


def test_worker_runs_the_engine(smoke):
    p = smoke["worker"]
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads([ln for ln in p.stdout.splitlines() if ln.startswith("{")][-1])
    assert r["seeds"] == 2 and r["n_exc"] == 10
    assert r["images_per_sec_aggregate"] > 0 and r["compile_s"] > 0
    assert r["dropped_events"] == [0, 0, 0] and r["presentations_per_image"] == 1.0
    # weights 784 × 10 float32 dominate the state: at least 31 kB per seed
    assert r["state_mb_per_seed"] >= 784 * 10 * 4 / 2**20


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs at least 2 CPU cores")
def test_per_core_runs_one_pinned_process_per_core(tmp_path):
    out = tmp_path / "r.json"
    p = _run("--cases", "dc15:10:2", "--per-core", "--chunk", "1", "--chunks", "1", "--no-conv", "--no-numpy",
             "--no-brian2", "--no-bindsnet", "--no-first100", "--json", str(out))
    assert p.returncode == 0, p.stderr[-3000:]
    rows = json.loads(out.read_text())["results"]
    per_core = [r for r in rows if r["tool"] == "snnjax-per-core"]
    cores = len(os.sched_getaffinity(0))
    if 2 % cores:
        assert not per_core
        return
    (r,) = per_core
    assert r["seeds"] == 2 and r["processes"] == cores == len(r["per_process_images_per_sec"])
    assert abs(r["images_per_sec_aggregate"] - sum(r["per_process_images_per_sec"])) < 0.01


def test_fast_path_ab_prints_the_ratio(smoke):
    p = smoke["fast_path_ab"]
    assert p.returncode == 0, p.stderr[-3000:]
    line = next(ln for ln in p.stdout.splitlines() if ln.startswith("dc15"))
    fast, slow, ratio = line.split()[1:]
    assert float(fast) > 0 and float(slow) > 0 and ratio.endswith("×")
    # the printed ratio is deferred / general of the two printed rates (each rounded to 0.1 img/s)
    f, s = float(fast), float(slow)
    lo, hi = (f - 0.05) / (s + 0.05), (f + 0.05) / max(s - 0.05, 1e-9)
    assert lo - 0.005 <= float(ratio[:-1]) <= hi + 0.005, line
    bad = smoke["fast_path_ab_bad"]
    assert bad.returncode != 0 and "dc16" in bad.stderr


def _conv_run(seeds, impl, seconds, aggregate=None):
    """A conv worker line: 10 images per phase; ``seconds`` per phase name (wall; CPU time = half)."""
    phases = [dict(phase=name, images=10, seeds=1 if name.startswith("front") else seeds, seconds=s, cpu_seconds=s / 2,
                   first_call_s=1.0, compile_s=1.0, images_per_sec_per_seed=10 / s,
                   images_per_sec_aggregate=(aggregate or {}).get(name, 10 * seeds / s)) for name, s in seconds.items()]
    return dict(tool="snnjax", net="conv-mozafari", seeds=seeds, images=10, conv_impl=impl, phases=phases,
                peak_rss_mb=500.0, backend="cpu", side_by_side=seeds == 1)


def test_conv_table_against_spyketorch_from_json(tmp_path):
    secs = {"front end (DoG + latency)": 0.01, "layer 1 STDP training": 0.05, "layer 1 inference": 0.02,
            "layer 2 STDP training": 0.1, "layer 2 inference": 0.02, "decision R-STDP training": 0.01,
            "decision inference": 0.01}
    st_ms = dict(front_end=3.0, layer1_stdp=10.0, layer2_stdp=15.0, decision_rstdp=20.0, inference=25.0)
    blob = dict(meta=dict(backend="cpu"), results=[], references=[],
                conv=[_conv_run(1, "dot", secs), _conv_run(8, "dot", secs, {"layer 1 STDP training": 400.0})],
                conv_references=[dict(tool="spyketorch", threads=1, images=10, ms_per_image=st_ms,
                                      cpu_ms_per_image={k: v / 4 for k, v in st_ms.items()})])
    path, md = tmp_path / "c.json", tmp_path / "c.md"
    path.write_text(json.dumps(blob))
    p = _run("--from-json", str(path), "--markdown", str(md))
    assert p.returncode == 0, p.stderr
    table = md.read_text()
    # snnjax ms per image: front end 1, layer 1 5, layer 2 10 (+ layer-1 features 2), decision 1,
    # inference 2 + 2 + 1 = 5; SpykeTorch 3, 10, 15, 20, 25
    for row in ("| front end | 3.00 | 1.00 | **3.00×** |", "| layer-1 STDP epoch | 10.00 | 5.00 | **2.00×** |",
                "| layer-2 STDP epoch | 15.00 | 10.00 | **1.50×** |",
                "| layer-2 STDP epoch + layer-1 features | 15.00 | 12.00 | **1.25×** |",
                "| decision R-STDP epoch | 20.00 | 1.00 | **20.00×** |", "| inference (3 layers) | 25.00 | 5.00 | **5.00×** |",
                # CPU time: snnjax half its wall time, SpykeTorch a quarter → half the wall-clock ratio
                "| front end | 0.75 | 0.50 | **1.50×** |",
                # 8 seeds: 400 images × seeds / s against 10 / 0.05 = 200 for one seed; in CPU time the
                # 8-seed epoch took as long as the 1-seed one (0.025 s): 8 × the images per CPU second
                "| dot | 8 | layer 1 STDP training | 2.00× | 8.00× |"):
        assert row in table, (row, table)
    assert "1.50×" in p.stdout and "against SpykeTorch" in p.stdout


def _method2_readout():
    import importlib.util

    spec = importlib.util.spec_from_file_location("method2_readout", ROOT / "benchmarks" / "method2_readout.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_method2_classifiers_perceptron_and_prototypes():
    import numpy as np

    m = _method2_readout()
    x = np.array([[1.0, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    y = np.array([0, 1, 1, 0])
    # eta 0: the class counts themselves
    np.testing.assert_allclose(m.perceptron_templates(x, y, 2, 0.0), np.stack([x[y == c].sum(0) for c in range(2)], 1))
    # image 2 (class 1) scores its own count [1, 2, 0] (cos 0.95) above class 0's [1, 0, 0] (0.71) and
    # image 3 (class 0, [0, 0, 1]) is orthogonal to class 1's count: no correction
    h = m.perceptron_templates(x, y, 2, 1.0)
    np.testing.assert_allclose(h[:, 0], [1, 0, 1])
    # a class-1 image that class 0 scores higher even after it is counted for class 1 (cos 0.996
    # against 0.846) is removed from class 0's count, clipped at 0
    x2 = np.array([[1.0, 1, 0], [0, 0, 1], [1, 0.9, 0.1]])
    h2 = m.perceptron_templates(x2, np.array([0, 1, 1]), 2, 1.0)
    np.testing.assert_allclose(h2[:, 0], [0, 0.1, 0], atol=1e-12)
    np.testing.assert_allclose(h2[:, 1], [1, 0.9, 1.1])
    # prototypes: k ≥ class size keeps every image; k = 1 is the class sum
    p, lab = m.competitive_prototypes(x, y, 2, 5)
    assert sorted(map(tuple, p.T)) == sorted(map(tuple, x)) and sorted(lab) == [0, 0, 1, 1]
    p1, lab1 = m.competitive_prototypes(x, y, 2, 1)
    np.testing.assert_allclose(p1, np.stack([x[y == c].sum(0) for c in range(2)], 1))
    assert lab1.tolist() == [0, 1]


def test_langevin_step_prints_the_noise_and_the_quantile_update(capsys):
    import runpy

    main = runpy.run_path(str(Path(__file__).resolve().parents[1] / "benchmarks" / "langevin_step.py"))["main"]
    assert main(["--weights", "6,5", "--probs", "0.1,0.9", "--repeats", "2"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    blob = json.loads(out[-1])
    assert blob["weights"] == [6, 5] and blob["probs"] == [0.1, 0.9]
    assert [r["part"] for r in blob["rows"]] == ["noise", "noise, jax.random.normal", "quantiles (2)",
                                                 "quantiles (2), whole arrays"]
    assert all(len(r["cpu_ms"]) == 2 and min(r["cpu_ms"]) >= 0 for r in blob["rows"])
    assert blob["noise_speedup"] > 0 and blob["quantiles_speedup"] > 0
    for bad in (["--probs", "0,1"], ["--weights", "0,3"], ["--repeats", "0"], ["--rounds", "0"]):
        with pytest.raises(SystemExit) as exc:
            main(bad)
        assert exc.value.code == 2


def test_decision_rows_times_both_forms_and_checks_they_agree(capsys):
    import runpy

    main = runpy.run_path(str(Path(__file__).resolve().parents[1] / "benchmarks" / "decision_rows.py"))["main"]
    assert main(["--tiny", "--seeds", "2", "--images", "12", "--rounds", "1"]) == 0
    blob = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert blob["network"] == "tiny" and blob["seeds"] == 2 and blob["images"] == 12
    assert [r["rule"].split(" ")[0] for r in blob["rows"]] == ["r-stdp"] * 3
    assert all(r["ratio"] > 0 and len(r["row_local_ms"]) == 1 for r in blob["rows"])
    with pytest.raises(SystemExit) as exc:
        main(["--images", "0"])
    assert exc.value.code == 2
