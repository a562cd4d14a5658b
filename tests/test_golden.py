"""Regression pins: per-seed metrics of one tiny fixed run of every built-in experiment, and the seed keys.

The golden files ``tests/golden/<experiment>.json`` were recorded from the commit named in each file
(``recorded_from``) by running this module as a script::

    python tests/test_golden.py --record        # writes tests/golden/*.json

Each tiny run sets explicitly every config key whose default is being redesigned (e.g.
``use-it-or-lose-it``'s ``k_p_train = 1`` and flush semantics), so a change of defaults does not move
the pin; a change of *what a given config computes* does.

Comparisons:

* **bit-exact** — the seed keys (``key_data(seed_keys(0, 3))`` against ``fold_in(PRNGKey(0), i)`` and
  against the recorded words); every metric whose recorded per-seed values are all integers
  (accuracies of a few images are multiples of 100/n, spike counts, epochs run, …): these come from
  discrete spike decisions, and a float-rounding change that flips one spike is a real change;
* **within float rounding** (``rtol = 1e-5``, NaN where NaN) — metrics with fractional values that are
  sums/means of float32 quantities (weights, range widths, quantiles, ratios), whose last bits may
  change when XLA reorders a reduction in a refactor that computes the same thing.

Only the pinned metrics are compared: an experiment may report new metrics beside them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

GOLDEN = Path(__file__).resolve().parent / "golden"

#: One tiny run per experiment: ``(seeds, --set values)``. Every key a redesign may re-default is given.
CONFIGS: dict[str, tuple[int, list[str]]] = {
    "supervised-stdp": (2, ["classes=0,1,7", "n_rounds=2", "images_per_round=6", "n_test=9", "dt_ms=0.5",
                            "test_mode=parallel", "tie_rule=strict", "adaptive_threshold=true",
                            "target_rule=stdp", "other_rule=all-ltd", "protocol=original", "eval_every=1"]),
    "diehl-cook": (2, ["n_exc=10", "n_train=12", "n_test=8", "assign_window=12", "chunk=6", "dt_ms=0.5",
                       "rule=stdp-dc15"]),
    "use-it-or-lose-it": (2, ["n_train=9", "train_chunk=9", "n_test=6", "dt_ms=0.5", "k_p_train=1", "k_p_test=0",
                              "tau_prun_ms=0", "semantics=lazy", "flush=poisson", "flush_ms=50",
                              "flush_rate_hz=63", "test_mode=sequential", "tie_rule=strict",
                              "noise_divider=0", "blur_sigma=2", "blur_across_images=false",
                              "adaptive_threshold=true", "target_rule=stdp", "other_rule=all-ltd"]),
    "conv-mnist": (2, ["n_train=16", "n_test=8", "epochs1=1", "epochs2=1", "epochs3=1", "k1=4", "radius1=2", "k2=6",
                       "radius2=2", "feature_readout=true"]),
    "continual": (2, ["n_train=20", "n_test=10", "epochs1=1", "epochs2=1", "epochs3=1", "task2_epochs1=1",
                      "task2_epochs2=0", "task2_epochs3=1", "method=freeze-largest,langevin-ranges",
                      "langevin_epochs=1", "langevin_every=10", "langevin_stop=0", "compare_baseline=true"]),
}

RTOL = 1e-5


def tiny_argv(experiment: str, out: Path, *more: str) -> list[str]:
    seeds, sets = CONFIGS[experiment]
    argv = ["run", experiment, "--quiet", "--seeds", str(seeds), "--out", str(out)]
    for s in sets:
        argv += ["--set", s]
    return [*argv, *more]


def run_tiny(experiment: str, out: Path, *more: str) -> dict:
    """Run the pinned tiny config of ``experiment`` into ``out``; its ``results.json`` document."""
    from snnjax.cli import main

    assert main(tiny_argv(experiment, out, *more)) == 0, experiment
    return json.loads((out / "results.json").read_text())


def _all_integral(values: np.ndarray) -> bool:
    finite = values[np.isfinite(values)]
    return bool(np.all(finite == np.round(finite)))


def assert_matches_golden(experiment: str, doc: dict) -> None:
    """The pinned metrics of ``doc`` equal the golden file's (see the module docstring for how exactly)."""
    golden = json.loads((GOLDEN / f"{experiment.replace('-', '_')}.json").read_text())
    metrics = doc["metrics"]
    missing = sorted(set(golden["metrics"]) - set(metrics))
    assert not missing, f"{experiment}: pinned metrics no longer reported: {missing}"
    for name, want in golden["metrics"].items():
        want = np.asarray(want, dtype=float)
        got = np.asarray(metrics[name]["per_seed"], dtype=float)
        assert got.shape == want.shape, f"{experiment}:{name}: shape {got.shape} != pinned {want.shape}"
        if _all_integral(want):
            np.testing.assert_array_equal(got, want, err_msg=f"{experiment}:{name} (bit-exact pin)")
        else:
            np.testing.assert_allclose(got, want, rtol=RTOL, atol=0, equal_nan=True,
                                       err_msg=f"{experiment}:{name} (pinned within float rounding)")


# ``golden_runs`` (tests/conftest.py): each experiment's tiny run, made once per session and shared.


@pytest.mark.parametrize("experiment", list(CONFIGS))
def test_tiny_run_reproduces_its_pinned_per_seed_metrics(experiment, golden_runs):
    assert_matches_golden(experiment, golden_runs(experiment))


def _per_seed(doc: dict) -> dict[str, np.ndarray]:
    return {k: np.asarray(v["per_seed"], dtype=float) for k, v in doc["metrics"].items()}


def _untimed(extra: dict) -> dict:
    """``extra`` without the wall-clock entries (which differ between any two runs)."""
    return {k: v for k, v in extra.items() if "wall" not in k and not k.endswith("_s")}


def test_continual_run_metrics_obey_the_forgetting_formulas(golden_runs):
    """On the tiny run (two method arms and the baseline): forgetting = after task 1 − final task 1,
    final = last point of the curve, reduction = baseline/method where the method forgot."""
    m = _per_seed(golden_runs("continual"))
    prefixes = ["baseline_", "freeze-largest:", "langevin-ranges:"]
    for p in prefixes:
        np.testing.assert_array_equal(m[f"{p}final_task1"], m[f"{p}task1_accuracy"][:, -1])
        np.testing.assert_array_equal(m[f"{p}final_task2"], m[f"{p}task2_accuracy"][:, -1])
        np.testing.assert_array_equal(m[f"{p}forgetting"], m[f"{p}task1_after_task1"] - m[f"{p}final_task1"])
    for p in prefixes[1:]:
        f = m[f"{p}forgetting"]
        want = np.where(f > 0, m["baseline_forgetting"] / np.where(f > 0, f, 1), np.nan)
        np.testing.assert_array_equal(m[f"{p}forgetting_reduction"], want)
    # the arms share task 1 (same seeds, same radii): the same accuracy after task 1
    for p in prefixes[1:]:
        np.testing.assert_array_equal(m[f"{p}task1_after_task1"], m["baseline_task1_after_task1"])


@pytest.mark.parametrize("experiment", ["supervised-stdp", "diehl-cook", "use-it-or-lose-it", "conv-mnist"])
def test_interrupted_then_resumed_run_equals_the_uninterrupted_run(experiment, golden_runs, tmp_path, monkeypatch):
    """Ctrl-C right after the first checkpoint is written, then ``--resume``: every metric (per seed, bit for
    bit) and ``extra`` (but wall times) equal the uninterrupted run's."""
    from snnjax.checkpoint import FILENAME, Checkpointer, describe
    from snnjax.cli import main

    real_save = Checkpointer.save

    def save_then_interrupt(self, *a, **k):
        written = real_save(self, *a, **k)
        if written is not None:
            raise KeyboardInterrupt
        return written

    out = tmp_path / "run"
    monkeypatch.setattr(Checkpointer, "save", save_then_interrupt)
    assert main(tiny_argv(experiment, out)) == 130
    monkeypatch.setattr(Checkpointer, "save", real_save)
    assert describe(out / FILENAME)["chunk"] >= 1
    if (out / "results.json").exists():  # what an interrupted run leaves is marked incomplete
        assert json.loads((out / "results.json").read_text())["complete"] is False
    assert main(["run", "--resume", str(out), "--quiet"]) == 0
    resumed, whole = json.loads((out / "results.json").read_text()), golden_runs(experiment)
    a, b = _per_seed(resumed), _per_seed(whole)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=f"{experiment}: {name}")
    assert _untimed(resumed["extra"]) == _untimed(whole["extra"])


def test_a_resumed_supervised_run_counts_the_dropped_events_of_the_whole_run(tmp_path, monkeypatch):
    """``dropped_events_per_seed`` of a resumed run counts the rounds before the interruption too (it used to
    restart from 0 at the resume). Every presentation is made to report one extra dropped event per image,
    so that each round contributes a known, non-zero count."""
    from snnjax.checkpoint import Checkpointer
    from snnjax.cli import main
    from snnjax_plugins.experiments import supervised_stdp

    real_present_many = supervised_stdp.net.present_many

    def present_many_dropping(*a, **k):
        state, out = real_present_many(*a, **k)
        return state, out._replace(dropped_events=out.dropped_events + 1)

    monkeypatch.setattr(supervised_stdp.net, "present_many", present_many_dropping)
    sets = ["n_rounds=3", "images_per_round=2", "n_test=3", "dt_ms=0.5", "test_mode=parallel", "classes=0,1,7"]
    argv = lambda out: ["run", "supervised-stdp", "--quiet", "--seeds", "1", "--out", str(out),  # noqa: E731
                        *[a for s in sets for a in ("--set", s)]]
    assert main(argv(tmp_path / "whole")) == 0
    whole = json.loads((tmp_path / "whole" / "results.json").read_text())["extra"]["dropped_events_per_seed"]
    assert whole[0] >= 3 * 2  # at least the forced ones: 3 rounds × 2 training images

    real_save, calls = Checkpointer.save, {"n": 0}

    def save_then_interrupt(self, *a, **k):
        written = real_save(self, *a, **k)
        calls["n"] += written is not None
        if calls["n"] == 2:  # after two of the three rounds
            raise KeyboardInterrupt
        return written

    monkeypatch.setattr(Checkpointer, "save", save_then_interrupt)
    assert main(argv(tmp_path / "run")) == 130
    monkeypatch.setattr(Checkpointer, "save", real_save)
    assert main(["run", "--resume", str(tmp_path / "run"), "--quiet"]) == 0
    resumed = json.loads((tmp_path / "run" / "results.json").read_text())["extra"]["dropped_events_per_seed"]
    assert resumed == whole


@pytest.mark.parametrize("experiment", ["diehl-cook", "use-it-or-lose-it"])
def test_a_first_seed_range_reproduces_that_seed_of_the_whole_run(experiment, golden_runs, tmp_path):
    """``--seeds 1 --first-seed 1`` gives exactly seed 1's per-seed metrics of the 2-seed run."""
    argv = tiny_argv(experiment, tmp_path / "run")
    argv[argv.index("--seeds") + 1] = "1"
    from snnjax.cli import main

    assert main([*argv, "--first-seed", "1"]) == 0
    part = json.loads((tmp_path / "run" / "results.json").read_text())
    assert part["first_seed"] == 1 and part["seeds"] == 1
    whole = _per_seed(golden_runs(experiment))
    for name, values in _per_seed(part).items():
        np.testing.assert_array_equal(values, whole[name][1:2], err_msg=f"{experiment}: {name}")


def test_seed_keys_are_fold_in_of_the_seed_key_and_pinned():
    """``seed_keys(s, n)[i] = fold_in(PRNGKey(s), i)``, bit for bit; and the words themselves are pinned
    (catches a change of the PRNG implementation or of the derivation, e.g. ``fold_in(i + 1)`` or split)."""
    import jax

    from snnjax.seeds import seed_keys

    got = np.asarray(jax.random.key_data(seed_keys(0, 3)))
    want = np.stack([np.asarray(jax.random.key_data(jax.random.fold_in(jax.random.PRNGKey(0), i))) for i in range(3)])
    np.testing.assert_array_equal(got, want)
    pinned = json.loads((GOLDEN / "seed_keys.json").read_text())
    np.testing.assert_array_equal(got, np.asarray(pinned["key_data_seed_keys_0_3"], dtype=np.uint32))
    # a seed range gets the keys of the same seeds in the whole run: seeds 1, 2 = rows 1, 2
    np.testing.assert_array_equal(np.asarray(jax.random.key_data(seed_keys(0, 2, first=1))), got[1:])
    # with JAX's default (partitionable) threefry, split(k, n)[i] happens to equal fold_in(k, i); under the
    # other threefry mode it does not, while fold_in keeps its value: the derivation must be fold_in in both
    with jax.threefry_partitionable(False):
        np.testing.assert_array_equal(np.asarray(jax.random.key_data(seed_keys(0, 3))), want)
        np.testing.assert_array_equal(np.asarray(jax.random.key_data(seed_keys(0, 2, first=1))), want[1:])


def test_two_device_run_of_a_tiny_experiment_equals_the_pinned_one_device_run(tmp_path):
    """``diehl-cook``'s and ``conv-mnist``'s tiny runs with their 2 seeds sharded over 2 (forced host) devices
    give the pinned per-seed metrics of the 1-device runs (sharded == unsharded for real experiments, not a
    toy); the conv programs did place their seed axis over both devices."""
    script = (
        "import sys, jax\n"
        "assert len(jax.devices()) == 2, jax.devices()\n"
        "from snnjax.seeds import seed_mesh\n"
        "assert seed_mesh(2) is not None\n"
        "import snnjax.loop\n"
        "placed = []\n"
        "real = snnjax.loop.shard_seeds\n"
        "def spy(tree, mesh):\n"
        "    out = real(tree, mesh)\n"
        "    placed.extend(len(x.sharding.device_set) for x in jax.tree.leaves(out) if isinstance(x, jax.Array))\n"
        "    return out\n"
        "snnjax.loop.shard_seeds = spy\n"
        "from tests.test_golden import run_tiny, assert_matches_golden\n"
        "from pathlib import Path\n"
        "assert_matches_golden('diehl-cook', run_tiny('diehl-cook', Path(sys.argv[1]) / 'dc'))\n"
        "placed.clear()\n"
        "assert_matches_golden('conv-mnist', run_tiny('conv-mnist', Path(sys.argv[1]) / 'conv'))\n"
        "assert placed and set(placed) == {2}, placed\n"
        "print('OK')\n"
    )
    import os

    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "run")], env=env, cwd=root,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OK" in out.stdout


def _record() -> None:  # pragma: no cover - run by hand, see the module docstring
    import tempfile

    import jax

    from snnjax.seeds import seed_keys

    GOLDEN.mkdir(exist_ok=True)
    import os

    commit = os.environ.get("GOLDEN_COMMIT") or subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()

    def write(path: Path, doc: dict) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        tmp.replace(path)

    write(GOLDEN / "seed_keys.json", {
        "recorded_from": commit,
        "key_data_seed_keys_0_3": np.asarray(jax.random.key_data(seed_keys(0, 3))).tolist(),
    })
    only = [a for a in sys.argv[2:]] or list(CONFIGS)
    for name in only:
        with tempfile.TemporaryDirectory() as tmp:
            doc = run_tiny(name, Path(tmp) / "run")
        seeds, sets = CONFIGS[name]
        write(GOLDEN / f"{name.replace('-', '_')}.json", {
            "experiment": name, "recorded_from": commit, "seeds": seeds, "sets": sets,
            "metrics": {k: v["per_seed"] for k, v in doc["metrics"].items()},
        })
        print(f"recorded {name}: {len(doc['metrics'])} metrics")


if __name__ == "__main__":
    if sys.argv[1:2] != ["--record"]:
        sys.exit("usage: python tests/test_golden.py --record [EXPERIMENT ...]")
    _record()
