"""Checkpoints: round trips, damaged files, mismatched runs, and kill-and-resume end to end.

The helpers :func:`cli_command`, :func:`run_cli` and :func:`kill_and_resume`
are reusable for any experiment: pass ``plugin=None`` to use the installed
plugins (e.g. ``kill_and_resume(tmp_path / "run", "supervised-stdp", seeds=2,
sets=["n_train=300"])``), or ``"module:attribute"`` naming a plugin object to
register on its own (as the fake experiment below).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import types
import zipfile
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnjax import hookimpl
from snnjax.checkpoint import FILENAME, Checkpointer, describe, resume_or, save_chunk
from snnjax.errors import CheckpointError
from snnjax.experiment import Experiment, RunContext, RunResult
from snnjax.plugins import build_registry

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- a tiny chunked experiment

SLEEP_ENV = "SNNJAX_TEST_CHUNK_SLEEP"  # seconds to sleep after each chunk (subprocess tests)
INTERRUPT_ENV = "SNNJAX_TEST_INTERRUPT_AT"  # raise KeyboardInterrupt after this many chunks


@jax.jit
@jax.vmap
def _chunk(state):
    key, sub = jax.random.split(state["key"])
    noise = jax.random.normal(sub, state["w"].shape, dtype=jnp.float32)
    w = 0.9 * state["w"] + noise
    return {"key": key, "w": w, "count": state["count"] + jnp.sum(noise > 0).astype(jnp.int32),
            "flag": jnp.sum(w) > 0}


def _fake_run(ctx: RunContext) -> RunResult:
    n_chunks, dim, n = ctx.config["n_chunks"], ctx.config["dim"], ctx.n_seeds
    sleep = float(os.environ.get(SLEEP_ENV) or 0)
    interrupt_at = int(os.environ.get(INTERRUPT_ENV) or -1)
    init = {"key": jax.random.split(jax.random.key(ctx.seed), n), "w": jnp.zeros((n, dim), jnp.float32),
            "count": jnp.zeros(n, jnp.int32), "flag": jnp.zeros(n, bool)}
    start, state, partial = resume_or(ctx, init)
    curve = [] if partial is None else list(np.asarray(partial.metrics["mean_w"]).T)
    for chunk in range(start, n_chunks):
        state = _chunk(state)
        curve.append(np.asarray(state["w"]).mean(axis=1))
        ctx.partial = RunResult(metrics={"mean_w": np.stack(curve, axis=1)},
                                curves_x={"mean_w": list(range(1, len(curve) + 1))})
        save_chunk(ctx, chunk + 1, state)
        ctx.progress(chunk + 1, n_chunks, "chunks")
        if chunk + 1 == interrupt_at:
            raise KeyboardInterrupt
        time.sleep(sleep)
    metrics = {"mean_w": np.stack(curve, axis=1), "w0": np.asarray(state["w"][:, 0]),
               "count": np.asarray(state["count"]), "flag": np.asarray(state["flag"], dtype=float),
               "key_bits": np.asarray(jax.random.key_data(state["key"])[:, 0], dtype=float)}
    return RunResult(metrics=metrics, curves_x={"mean_w": list(range(1, n_chunks + 1))})


def fake_chunks() -> Experiment:
    """A tiny chunked stochastic experiment (tests only)."""
    return Experiment("fake-chunks", "tiny chunked stochastic experiment (tests)",
                      {"seed": 0, "n_chunks": 6, "dim": 8}, _fake_run)


FAKE_PLUGIN = types.SimpleNamespace(__name__="fake_chunks_plugin",
                                    snnjax_experiments=hookimpl(lambda: {"fake-chunks": fake_chunks}))
FAKE = "tests.test_checkpoint:FAKE_PLUGIN"


def fake_registry():
    return build_registry([FAKE_PLUGIN], use_entry_points=False)


# --------------------------------------------------------------------------- reusable CLI helpers

_LAUNCH = (
    "import importlib, sys\n"
    "from snnjax.cli import main\n"
    "from snnjax.plugins import build_registry\n"
    "spec = sys.argv[1]\n"
    "reg = None\n"
    "if spec:\n"
    "    mod, _, attr = spec.partition(':')\n"
    "    obj = importlib.import_module(mod)\n"
    "    obj = getattr(obj, attr) if attr else obj\n"
    "    reg = build_registry([obj], use_entry_points=False)\n"
    "sys.exit(main(sys.argv[2:], registry=reg))\n"
)


def cli_command(argv: Sequence[str], plugin: str | None = None) -> list[str]:
    """``python -c ...`` running ``snnjax ARGV``, with only ``plugin`` ("module:attr") registered if given."""
    return [sys.executable, "-c", _LAUNCH, plugin or "", *argv]


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("JAX_PLATFORMS", "cpu")
    env.update(extra or {})
    return env


def run_cli(argv: Sequence[str], plugin: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``snnjax ARGV`` in a subprocess (cwd: the repository root) and wait for it."""
    return subprocess.run(cli_command(argv, plugin), cwd=ROOT, env=_env(env), capture_output=True, text=True,
                          timeout=timeout)


def run_argv(experiment: str, out: Path, seeds: int, sets: Sequence[str]) -> list[str]:
    argv = ["run", experiment, "--seeds", str(seeds), "--out", str(out), "--quiet"]
    for s in sets:
        argv += ["--set", s]
    return argv


def kill_and_resume(out: Path, experiment: str, *, seeds: int, sets: Sequence[str] = (), plugin: str | None = None,
                    env: dict[str, str] | None = None, resume_env: dict[str, str] | None = None, min_chunks: int = 1,
                    timeout: float = 300) -> tuple[dict, int]:
    """Start ``snnjax run``, SIGKILL it once a checkpoint of ``min_chunks`` chunks exists, then resume it.

    ``env`` is added to the environment of the killed run, ``resume_env``
    (default: ``env``) to that of the resumed one.

    Returns:
        The resumed run's ``results.json`` document and the chunk count the
        resume started from.
    """
    proc = subprocess.Popen(cli_command(run_argv(experiment, out, seeds, sets), plugin), cwd=ROOT, env=_env(env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpt, deadline, killed = out / FILENAME, time.monotonic() + timeout, False
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if ckpt.is_file() and describe(ckpt)["chunk"] >= min_chunks:
                proc.send_signal(signal.SIGKILL)
                killed = True
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None and not killed:
            proc.kill()
        _, stderr = proc.communicate()
    if not killed:
        pytest.fail(f"{experiment}: no checkpoint of {min_chunks} chunk(s) before the run ended "
                    f"(rc={proc.returncode}); give it more or slower chunks.\n{stderr[-3000:]}")
    if (out / "results.json").exists():
        pytest.fail(f"{experiment} finished before it was killed; give it more or slower chunks")
    resumed = run_cli(["run", "--resume", str(out), "--quiet"], plugin, env=env if resume_env is None else resume_env,
                      timeout=timeout)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    match = re.search(r"from its checkpoint: (\d+) chunk\(s\) done", resumed.stderr)
    assert match, f"the resumed run did not restore a checkpoint:\n{resumed.stderr[-3000:]}"
    doc = json.loads((out / "results.json").read_text())
    assert doc["complete"] is True
    return doc, int(match.group(1))


def assert_same_metrics(a: dict, b: dict) -> None:
    """Two ``results.json`` documents with exactly the same metrics (per seed, bit for bit)."""
    assert a["metrics"].keys() == b["metrics"].keys()
    for name in a["metrics"]:
        np.testing.assert_array_equal(np.asarray(a["metrics"][name]["per_seed"], dtype=float),
                                      np.asarray(b["metrics"][name]["per_seed"], dtype=float), err_msg=name)


# --------------------------------------------------------------------------- unit tests


def _state():
    return {
        "typed": jax.random.split(jax.random.key(3), 4),
        "raw": jax.random.split(jax.random.PRNGKey(7), 4),
        "w": jax.random.normal(jax.random.PRNGKey(1), (4, 5), jnp.float32),
        "half": jnp.linspace(0, 1, 6, dtype=jnp.bfloat16),
        "n": (jnp.arange(4, dtype=jnp.int32), jnp.array([True, False, True, True])),
        "step": 17,
        "np": np.arange(3, dtype=np.int64),
    }


def _template():
    s = _state()
    return jax.tree_util.tree_map(lambda x: x, s)


def _ckpt(tmp_path, **kw):
    args = dict(experiment="exp", config={"seed": 0, "lr": 0.5, "classes": [1, 2]}, n_seeds=4)
    args.update(kw)
    return Checkpointer(tmp_path, **args)


def test_round_trip_keys_floats_ints_bools(tmp_path):
    state = _state()
    partial = RunResult(metrics={"acc": np.array([[0.5, 0.7]] * 4), "n": np.arange(4)},
                        curves_x={"acc": [100, 200]}, extra={"note": "x"}, figures=["a.png"])
    ck = _ckpt(tmp_path)
    assert ck.save(3, state, partial, {"phase": "task1"}) == tmp_path / FILENAME
    chunk, restored, part = _ckpt(tmp_path).load(_template(), "exp", {"seed": 0, "lr": 0.5, "classes": (1, 2)}, 4)
    assert chunk == 3
    assert jnp.issubdtype(restored["typed"].dtype, jax.dtypes.prng_key)
    np.testing.assert_array_equal(jax.random.key_data(restored["typed"]), jax.random.key_data(state["typed"]))
    for name in ("raw", "w", "half"):
        assert restored[name].dtype == state[name].dtype
        np.testing.assert_array_equal(np.asarray(restored[name]), np.asarray(state[name]))
    np.testing.assert_array_equal(restored["n"][0], state["n"][0])
    assert restored["n"][1].dtype == jnp.bool_ and restored["n"][1].tolist() == [True, False, True, True]
    assert restored["step"] == 17 and isinstance(restored["step"], int)
    assert isinstance(restored["np"], np.ndarray) and restored["np"].dtype == np.int64
    # a restored typed key draws the same numbers as the original
    np.testing.assert_array_equal(jax.random.normal(restored["typed"][0], (3,)),
                                  jax.random.normal(state["typed"][0], (3,)))
    np.testing.assert_array_equal(part.metrics["acc"], partial.metrics["acc"])
    assert part.curves_x == {"acc": [100, 200]} and part.extra == {"note": "x"} and part.figures == ["a.png"]
    meta = describe(tmp_path / FILENAME)
    assert meta["chunk"] == 3 and meta["experiment"] == "exp" and meta["n_seeds"] == 4
    assert meta["extra"] == {"phase": "task1"} and len(meta["checksum"]) == 64
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_every_defers_and_flush_writes(tmp_path):
    ck = _ckpt(tmp_path, every=2)
    assert ck.save(1, _state()) is None and not ck.exists()
    assert ck.save(2, _state()) is not None and describe(ck.path)["chunk"] == 2
    assert ck.save(3, _state()) is None and describe(ck.path)["chunk"] == 2
    ck.flush()
    assert describe(ck.path)["chunk"] == 3 and ck.last_written == 3


def test_no_checkpoint_gives_none_and_resume_or_starts_fresh(tmp_path):
    assert _ckpt(tmp_path).load(_template()) is None
    tmpl = _template()
    ctx = RunContext(config={"seed": 0}, n_seeds=4, out_dir=tmp_path, registry=None)
    assert resume_or(ctx, tmpl)[0] == 0 and resume_or(ctx, tmpl)[2] is None
    assert save_chunk(ctx, 1, tmpl) is None  # no checkpointer: a no-op
    ctx.checkpoint = _ckpt(tmp_path)  # not resuming: ignore whatever is on disk
    save_chunk(ctx, 2, _state())
    assert resume_or(ctx, tmpl)[0] == 0
    ctx.checkpoint = _ckpt(tmp_path, resume=True)
    ctx.partial = None
    start, _, _ = resume_or(ctx, tmpl)
    assert start == 2


def test_corrupt_file_is_a_clear_error(tmp_path):
    (tmp_path / FILENAME).write_bytes(b"this is not a zip file at all")
    with pytest.raises(CheckpointError, match="corrupt or truncated.*Delete it"):
        _ckpt(tmp_path).load(_template())


def test_truncated_file_is_a_clear_error(tmp_path):
    _ckpt(tmp_path).save(1, _state())
    data = (tmp_path / FILENAME).read_bytes()
    (tmp_path / FILENAME).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        _ckpt(tmp_path).load(_template())


def test_altered_content_fails_the_checksum(tmp_path):
    _ckpt(tmp_path).save(1, _state())
    path = tmp_path / FILENAME
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["leaf_00003"] = arrays["leaf_00003"] + 1  # one leaf changed, metadata kept
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    with pytest.raises(CheckpointError, match="checksum"):
        _ckpt(tmp_path).load(_template())


def test_not_a_checkpoint_npz(tmp_path):
    np.savez(tmp_path / FILENAME, a=np.zeros(3))
    with pytest.raises(CheckpointError, match="no metadata"):
        _ckpt(tmp_path).load(_template())
    with zipfile.ZipFile(tmp_path / "x.zip", "w") as zf:
        zf.writestr("junk.txt", "x")
    os.replace(tmp_path / "x.zip", tmp_path / FILENAME)
    with pytest.raises(CheckpointError):
        _ckpt(tmp_path).load(_template())


def test_mismatched_config_seeds_experiment(tmp_path):
    _ckpt(tmp_path).save(2, _state())
    with pytest.raises(CheckpointError, match=r"field 'config' differs: 'lr' is 0.5 in the checkpoint but 0.25"):
        _ckpt(tmp_path, config={"seed": 0, "lr": 0.25, "classes": [1, 2]}).load(_template())
    with pytest.raises(CheckpointError, match=r"'extra' is 1 in this run but absent.*code changed since"):
        _ckpt(tmp_path, config={"seed": 0, "lr": 0.5, "classes": [1, 2], "extra": 1}).load(_template())
    with pytest.raises(CheckpointError, match=r"'lr' is 0.5 in the checkpoint but 0.25.*original settings"):
        _ckpt(tmp_path, config={"seed": 0, "lr": 0.25, "classes": [1, 2], "extra": 1}).load(_template())
    with pytest.raises(CheckpointError, match=r"field 'n_seeds' differs: it holds 4 seed\(s\), this run has 8"):
        _ckpt(tmp_path, n_seeds=8).load(_template())
    with pytest.raises(CheckpointError, match=r"field 'experiment' differs.*'exp'.*'other'.*--resume"):
        _ckpt(tmp_path, experiment="other").load(_template())
    with pytest.raises(CheckpointError, match="'n_seeds' differs"):
        _ckpt(tmp_path, n_seeds=8).peek()


def test_mismatched_tree_structure(tmp_path):
    _ckpt(tmp_path).save(2, _state())
    tmpl = _template()
    tmpl["w"] = jnp.zeros((4, 6), jnp.float32)
    with pytest.raises(CheckpointError, match=r"'structure' differs at state leaf \d+ \['w'\]: shape is \[4, 5\]"):
        _ckpt(tmp_path).load(tmpl)
    tmpl = _template()
    tmpl["w"] = tmpl["w"].astype(jnp.float16)
    with pytest.raises(CheckpointError, match=r"dtype is 'float32' in the checkpoint but 'float16'"):
        _ckpt(tmp_path).load(tmpl)
    tmpl = _template()
    tmpl["more"] = jnp.zeros(3)
    with pytest.raises(CheckpointError, match="holds 8 state leaves, this run.s state has 9"):
        _ckpt(tmp_path).load(tmpl)
    tmpl = _template()
    tmpl["typed"] = jax.random.key_data(tmpl["typed"])  # raw where typed keys were saved
    with pytest.raises(CheckpointError, match=r"\['typed'\]: shape"):
        _ckpt(tmp_path).load(tmpl)


# --------------------------------------------------------------------------- CLI


def test_resume_refuses_conflicting_settings(tmp_path, capsys):
    from snnjax.cli import main

    out = tmp_path / "run"
    reg = fake_registry()
    assert main(["run", "fake-chunks", "--seeds", "2", "--out", str(out), "--quiet", "--set", "n_chunks=2"],
                registry=reg) == 0
    capsys.readouterr()
    assert main(["run", "--resume", str(out), "--set", "n_chunks=3"], registry=reg) == 2
    assert "n_chunks=3 conflicts with n_chunks=2" in capsys.readouterr().err
    assert main(["run", "--resume", str(out), "--seeds", "3"], registry=reg) == 2
    assert "has 2 seed(s), not --seeds 3" in capsys.readouterr().err
    assert main(["run", "other", "--resume", str(out)], registry=reg) == 2
    assert "is a run of 'fake-chunks', not 'other'" in capsys.readouterr().err
    assert main(["run", "--resume", str(tmp_path / "nowhere")], registry=reg) == 2
    assert "no config.json there" in capsys.readouterr().err
    assert main(["run"], registry=reg) == 2
    assert "needs an EXPERIMENT" in capsys.readouterr().err
    # agreeing settings are fine: the complete run resumes at its end
    assert main(["run", "--resume", str(out), "--seeds", "2", "--set", "n_chunks=2", "--quiet"], registry=reg) == 0
    assert "from its checkpoint: 2 chunk(s) done" in capsys.readouterr().err


def test_ctrl_c_keeps_last_checkpoint_and_resume_matches(tmp_path, monkeypatch, capsys):
    from snnjax.cli import main

    reg = fake_registry()
    ref, out = tmp_path / "ref", tmp_path / "run"
    base = ["--seeds", "3", "--quiet", "--set", "n_chunks=5"]
    assert main(["run", "fake-chunks", "--out", str(ref), *base], registry=reg) == 0
    monkeypatch.setenv(INTERRUPT_ENV, "3")
    # checkpoints only every 100 chunks: the one on disk after Ctrl-C is written by the interrupt handler
    assert main(["run", "fake-chunks", "--out", str(out), "--checkpoint-every", "100", *base], registry=reg) == 130
    assert describe(out / FILENAME)["chunk"] == 3
    partial = json.loads((out / "results.json").read_text())
    assert partial["complete"] is False and len(partial["metrics"]["mean_w"]["mean"]) == 3
    assert "--resume" in capsys.readouterr().err
    monkeypatch.delenv(INTERRUPT_ENV)
    assert main(["run", "--resume", str(out), "--quiet"], registry=reg) == 0
    assert_same_metrics(json.loads((ref / "results.json").read_text()), json.loads((out / "results.json").read_text()))


def test_kill_and_resume_end_to_end(tmp_path):
    ref_out, out = tmp_path / "ref", tmp_path / "killed"
    argv_sets = ["n_chunks=6", "dim=16"]
    ref = subprocess.Popen(cli_command(run_argv("fake-chunks", ref_out, 3, argv_sets), FAKE), cwd=ROOT, env=_env(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        resumed, start = kill_and_resume(out, "fake-chunks", seeds=3, sets=argv_sets, plugin=FAKE,
                                         env={SLEEP_ENV: "0.4"}, resume_env={}, min_chunks=1, timeout=120)
    finally:
        _, ref_err = ref.communicate(timeout=120)
    assert ref.returncode == 0, ref_err[-3000:]
    assert 1 <= start < 6
    assert_same_metrics(json.loads((ref_out / "results.json").read_text()), resumed)
