"""A run never destroys or silently loses results (issue 17, items 1–16).

Most cases use a tiny chunked experiment (``rel-chunks``: the fake of
``tests/test_checkpoint.py`` plus a figure, a ``weights.npz``, optional data and an
optional NaN metric), so that they run in seconds without MNIST training.
"""

from __future__ import annotations

import errno
import re
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import jax
import numpy as np
import pytest

from snnjax import data, hookimpl, plots
from snnjax.checkpoint import FILENAME, describe
from snnjax.cli import main
from snnjax.errors import DataError, PluginError
from snnjax.experiment import Experiment
from snnjax.plugins import build_registry

from .test_checkpoint import INTERRUPT_ENV, SLEEP_ENV, _env, _fake_run, assert_same_metrics, cli_command

ROOT = Path(__file__).resolve().parents[1]
LOCK_NAME = ".snnjax.lock"  # snnjax.rundir.LOCK_NAME


# --------------------------------------------------------------------------- the experiment


def write_weights(path: Path, w: np.ndarray) -> None:
    """How ``rel-chunks`` writes its weights (a test may replace it by a writer that fails half-way)."""
    np.savez_compressed(path, W=w)


def _rel_run(ctx):
    cfg = ctx.config
    if cfg["dataset"]:
        data.load(cfg["dataset"], "test", limit=5, data_dir=cfg["data_dir"] or None, registry=ctx.registry)
    result = _fake_run(ctx)
    if cfg["nan_metric"]:
        result.metrics["undefined"] = np.full(ctx.n_seeds, np.nan)
        result.metrics["unbounded"] = np.full(ctx.n_seeds, np.inf)
    write_weights(ctx.out_dir / "weights.npz", np.zeros((ctx.n_seeds, 16, 4), np.float32))
    x = result.curves_x["mean_w"]
    result.figures.append(str(plots.learning_curves(ctx.out_dir / "curve.png", x, {"w": result.metrics["mean_w"]})))
    return result


def rel_chunks() -> Experiment:
    """A tiny chunked experiment with a figure and a weights.npz (tests only)."""
    return Experiment("rel-chunks", "tiny chunked experiment with artifacts (tests)",
                      {"seed": 0, "n_chunks": 5, "dim": 8, "nan_metric": False, "dataset": "", "data_dir": "",
                       "dt_ms": 0.1}, _rel_run)


def _broken_factory() -> Experiment:
    raise RuntimeError("this factory is broken")


#: the config.json of a 2-seed rel-chunks run
REL_HEADER = {"experiment": "rel-chunks", "seeds": 2, "first_seed": 0, "config": {"n_chunks": 2}}

REL_PLUGIN = types.SimpleNamespace(
    __name__="rel_plugin",
    snnjax_experiments=hookimpl(lambda: {"rel-chunks": rel_chunks, "broken": _broken_factory}))
REL = "tests.test_reliability:REL_PLUGIN"


@pytest.fixture(scope="module")
def reg():
    import snnjax_plugins.datasets as datasets

    return build_registry([REL_PLUGIN, datasets], use_entry_points=False)


def run(reg, out, *extra, seeds=2, chunks=5):
    return main(["run", "rel-chunks", "--seeds", str(seeds), "--out", str(out), "--quiet",
                 "--set", f"n_chunks={chunks}", *extra], registry=reg)


def files_of(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("error: "), err
    assert "Traceback" not in err, err
    return lines[-1]


@pytest.fixture(scope="module")
def finished(reg, tmp_path_factory):
    """One complete run (2 seeds, 5 chunks), made under umask 022, reused by several tests."""
    out = tmp_path_factory.mktemp("finished") / "run"
    old = os.umask(0o022)
    try:
        assert run(reg, out) == 0
    finally:
        os.umask(old)
    return out


# --------------------------------------------------------------------------- 1. an existing run directory


def test_new_run_into_an_interrupted_run_is_refused_and_changes_nothing(reg, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    monkeypatch.setenv(INTERRUPT_ENV, "2")
    assert run(reg, out) == 130
    monkeypatch.delenv(INTERRUPT_ENV)
    before = files_of(out)
    assert {"config.json", FILENAME, "results.json"} <= set(before)
    capsys.readouterr()
    assert run(reg, out, "--set", "dim=4") == 2
    line = one_error_line(capsys.readouterr().err)
    assert "holds another run" in line and "--overwrite" in line and "--resume" in line
    assert files_of(out) == before, "a refused run changed the directory"
    assert main(["run", "--resume", str(out), "--quiet"], registry=reg) == 0
    assert "from its checkpoint: 2 chunk(s) done" in capsys.readouterr().err


def test_overwrite_replaces_the_old_run(reg, tmp_path):
    out = tmp_path / "run"
    assert run(reg, out, chunks=2) == 0
    assert run(reg, out, "--overwrite", chunks=3) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["config"]["n_chunks"] == 3 and len(doc["metrics"]["mean_w"]["mean"]) == 3


def test_real_experiment_into_an_existing_run_directory_is_refused(reg, finished, capsys):
    before = files_of(finished)
    argv = ["run", "supervised-stdp", "--seeds", "2", "--set", "dataset=mnist", "--out", str(finished), "--quiet"]
    assert main(argv) == 2
    assert "holds another run" in one_error_line(capsys.readouterr().err)
    assert files_of(finished) == before


# --------------------------------------------------------------------------- 2. SIGTERM / SIGHUP like Ctrl-C


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_sigterm_keeps_the_finished_part_and_resume_is_bit_identical(reg, tmp_path, monkeypatch, capsys, signame):
    import snnjax.cli as cli

    signum = getattr(signal, signame)
    class Unhandled(Exception):
        pass

    def unhandled(sig, frame):  # what the signal would do without snnjax's handler: end the process
        raise Unhandled(f"{signame} was not handled by snnjax run")

    monkeypatch.setattr(signal, "_test_previous", signal.signal(signum, unhandled), raising=False)
    ref, out = tmp_path / "ref", tmp_path / "run"
    assert run(reg, ref, seeds=3) == 0
    original, handler_before = cli._Progress.__call__, signal.getsignal(signum)

    def send_signal_at_chunk_3(self, done, total, what=""):
        original(self, done, total, what)
        if done == 3:
            os.kill(os.getpid(), signum)
            time.sleep(5)  # the handler interrupts this

    monkeypatch.setattr(cli._Progress, "__call__", send_signal_at_chunk_3)
    # checkpoints every 100 chunks only: the one on disk is the one flushed on the signal
    assert run(reg, out, "--checkpoint-every", "100", seeds=3) == 128 + signum
    monkeypatch.setattr(cli._Progress, "__call__", original)
    assert describe(out / FILENAME)["chunk"] == 3
    partial = json.loads((out / "results.json").read_text())
    assert partial["complete"] is False and len(partial["metrics"]["mean_w"]["mean"]) == 3
    assert "--resume" in capsys.readouterr().err
    assert signal.getsignal(signum) == handler_before  # the run's handler is gone again
    assert main(["run", "--resume", str(out), "--quiet"], registry=reg) == 0
    assert_same_metrics(json.loads((ref / "results.json").read_text()), json.loads((out / "results.json").read_text()))
    signal.signal(signum, signal._test_previous)


def test_kill_term_exits_143_with_the_finished_part(tmp_path):
    out = tmp_path / "run"
    argv = ["run", "rel-chunks", "--seeds", "2", "--out", str(out), "--quiet", "--set", "n_chunks=50"]
    proc = subprocess.Popen(cli_command(argv, REL), cwd=ROOT, env=_env({SLEEP_ENV: "0.3"}),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if (out / FILENAME).is_file():
                proc.send_signal(signal.SIGTERM)
                break
            time.sleep(0.02)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err[-2000:]
    assert "terminated" in err and "Traceback" not in err
    doc = json.loads((out / "results.json").read_text())
    assert doc["complete"] is False and doc["stopped_by"] == "terminated"


# --------------------------------------------------------------------------- 3. disk full, figure failures


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_while_writing_an_artifact_keeps_the_chunks_and_no_truncated_file(reg, tmp_path, monkeypatch,
                                                                                     capsys):
    ref, out = tmp_path / "ref", tmp_path / "run"
    assert run(reg, ref) == 0

    def half_then_full(path, w):
        with open(path, "wb") as fh:
            fh.write(b"PK\x03\x04" + b"\0" * 1000)  # the start of a zip file
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(sys.modules[__name__], "write_weights", half_then_full)
    assert run(reg, out) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "No space left on device" in line and "--resume" in line
    assert not (out / "weights.npz").exists(), "a truncated artifact was left under its final name"
    assert not list(out.glob(".staging-*")) and not list(out.glob(".*.tmp"))
    assert describe(out / FILENAME)["chunk"] == 5
    assert json.loads((out / "results.json").read_text())["complete"] is False
    monkeypatch.setattr(sys.modules[__name__], "write_weights", lambda path, w: np.savez_compressed(path, W=w))
    assert main(["run", "--resume", str(out), "--quiet"], registry=reg) == 0
    assert_same_metrics(json.loads((ref / "results.json").read_text()), json.loads((out / "results.json").read_text()))
    assert (out / "weights.npz").is_file()


def test_disk_full_while_writing_a_checkpoint_keeps_the_previous_one(reg, tmp_path, monkeypatch, capsys):
    import snnjax.rundir as rundir

    ref, out = tmp_path / "ref", tmp_path / "run"
    assert run(reg, ref) == 0
    real, calls = rundir.atomic_write, []

    def full_on_the_fourth_checkpoint(path, write, **kw):
        if Path(path).name == FILENAME:
            calls.append(path)
            if len(calls) >= 4:  # the disk stays full
                def partial_write(fh):
                    fh.write(b"PK\x03\x04 half a checkpoint")
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

                return real(path, partial_write, **kw)
        return real(path, write, **kw)

    monkeypatch.setattr(rundir, "atomic_write", full_on_the_fourth_checkpoint)
    assert run(reg, out) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "No space left on device" in line and "after chunk 3" in line and "--resume" in line
    assert describe(out / FILENAME)["chunk"] == 3  # the previous checkpoint, intact
    assert not list(out.glob(".*.tmp"))
    monkeypatch.setattr(rundir, "atomic_write", real)
    assert main(["run", "--resume", str(out), "--quiet"], registry=reg) == 0
    assert_same_metrics(json.loads((ref / "results.json").read_text()), json.loads((out / "results.json").read_text()))


def test_a_figure_failure_is_a_warning_not_a_lost_run(reg, tmp_path, monkeypatch):
    import matplotlib.figure

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", _enospc)
    out = tmp_path / "run"
    with pytest.warns(RuntimeWarning, match="curve.png not drawn"):
        assert run(reg, out) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["complete"] is True and doc["figures"] == []
    assert (out / "weights.npz").is_file() and not (out / "curve.png").exists()


# --------------------------------------------------------------------------- 4. data provenance


def _write_idx(path: Path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + arr.astype(np.uint8).tobytes())


def _idx_dir(directory: Path, fill: int) -> Path:
    directory.mkdir(parents=True)
    for prefix, n in (("train", 12), ("t10k", 6)):
        _write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", np.full((n, 28, 28), fill))
        _write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return directory


def test_fashion_mnist_subdirectory_wins_and_provenance_is_recorded(reg, tmp_path, capsys):
    root = _idx_dir(tmp_path / "data", fill=1)  # "MNIST" files at the top level
    _idx_dir(root / "fashion_mnist", fill=2)
    out = tmp_path / "run"
    assert run(reg, out, "--set", "dataset=fashion_mnist", "--set", f"data_dir={root}") == 0
    (record,) = json.loads((out / "results.json").read_text())["data"]
    assert record["dataset"] == "fashion_mnist" and record["kind"] == "idx"
    paths = [Path(f["path"]) for f in record["files"]]
    assert all(p.parent == (root / "fashion_mnist").resolve() for p in paths)
    assert record["files"][0]["sha256"] == data.file_digests(paths[0])["sha256"]
    assert data.load("fashion_mnist", "test", data_dir=str(root), registry=reg).images.max() == 2
    capsys.readouterr()
    assert main(["data", "--data-dir", str(root)], registry=reg) == 0
    listing = capsys.readouterr().out
    assert str(root / "fashion_mnist" / "train-images-idx3-ubyte.gz") in listing


def test_idx_files_of_another_published_dataset_are_refused(reg, tmp_path, monkeypatch):
    root = _idx_dir(tmp_path / "data", fill=1)
    md5 = data.file_digests(root / "t10k-images-idx3-ubyte.gz")["md5"]
    monkeypatch.setitem(data.KNOWN_IDX_MD5, md5, ("mnist", "t10k-images-idx3-ubyte.gz"))
    with pytest.raises(DataError, match="published 'mnist' file"):
        data.load("fashion_mnist", "test", data_dir=str(root), registry=reg)
    assert len(data.load("mnist", "test", data_dir=str(root), registry=reg)) == 6


def test_embedded_data_provenance(reg, tmp_path):
    out = tmp_path / "run"
    assert run(reg, out, "--set", "dataset=mnist-embedded", seeds=1, chunks=1) == 0
    (record,) = json.loads((out / "results.json").read_text())["data"]
    assert record["kind"] == "embedded" and len(record["files"][0]["sha256"]) == 64


# --------------------------------------------------------------------------- 5. concurrent runs


def test_a_second_run_into_a_locked_directory_exits_2_at_once(reg, tmp_path, capsys):
    from snnjax.rundir import RunLock

    out = tmp_path / "run"
    out.mkdir()
    with RunLock(out):  # as another process running there would hold it
        start = time.monotonic()
        assert run(reg, out) == 2
        assert time.monotonic() - start < 10
    line = one_error_line(capsys.readouterr().err)
    assert "in use by another snnjax run" in line and f"pid {os.getpid()}" in line
    assert sorted(p.name for p in out.iterdir()) == []


def test_two_processes_into_one_directory(reg, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["run", "rel-chunks", "--seeds", "2", "--out", str(out), "--quiet", "--set", "n_chunks=8"]
    first = subprocess.Popen(cli_command(argv, REL), cwd=ROOT, env=_env({SLEEP_ENV: "0.3"}),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "config.json").is_file() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert first.poll() is None, first.communicate()[1][-2000:]
        assert main(argv, registry=reg) == 2
        assert "in use by another snnjax run" in one_error_line(capsys.readouterr().err)
        _, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err[-2000:]
    doc = json.loads((out / "results.json").read_text())
    assert doc["complete"] is True and doc["config"]["n_chunks"] == 8
    assert not (out / LOCK_NAME).exists()


def test_a_stale_lock_file_from_a_killed_run_is_taken_over(reg, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_NAME).write_text(f"pid 999999 on {socket.gethostname()}\n")
    assert run(reg, out, chunks=1) == 0


# --------------------------------------------------------------------------- 6. config values the run cannot take

BAD_VALUES = [["--set", "seed=-1"], ["--set", "seed=1e20"], ["--set", "seed=4294967296"], ["--set", "dt_ms=1e309"],
              ["--set", "dt_ms=nan"], ["--set", "dt_ms=inf"]]


@pytest.mark.parametrize("dry", [True, False])
@pytest.mark.parametrize("bad", BAD_VALUES, ids=lambda b: b[-1])
def test_values_that_would_crash_the_run_are_refused_by_run_and_dry_run(reg, tmp_path, capsys, bad, dry):
    out = tmp_path / "run"
    assert run(reg, out, *bad, *(["--dry-run"] if dry else [])) == 2
    line = one_error_line(capsys.readouterr().err)
    assert ("finite" in line or "must be a number" in line) if "dt_ms" in bad[-1] else ("0…4294967295" in line)
    assert not out.exists()


def test_non_finite_value_from_toml_is_refused(reg, tmp_path, capsys):
    toml = tmp_path / "c.toml"
    toml.write_text("dt_ms = inf\n")
    assert main(["run", "rel-chunks", "--config", str(toml), "--dry-run"], registry=reg) == 2
    assert "must be a finite number" in one_error_line(capsys.readouterr().err)


# --------------------------------------------------------------------------- 7. output paths


def _out_path_cases(tmp_path: Path, finished: Path, parts: tuple[Path, Path]) -> dict[str, list[str]]:
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    a_dir = tmp_path / "a_dir"
    a_dir.mkdir(exist_ok=True)
    return {
        "run --out an existing file": ["run", "rel-chunks", "--out", str(a_file), "--quiet"],
        "run --out below a file": ["run", "rel-chunks", "--out", str(a_file / "sub"), "--quiet"],
        "plot --out a file": ["plot", str(finished), "--out", str(a_file)],
        "report --out a directory": ["report", str(finished), "--out", str(a_dir)],
        "export-nir to a directory": ["export-nir", str(finished), str(a_dir)],
        "merge into a file": ["merge", str(a_file), *map(str, parts)],
    }


@pytest.mark.parametrize("case", ["run --out an existing file", "run --out below a file", "plot --out a file",
                                  "report --out a directory", "export-nir to a directory", "merge into a file"])
def test_unusable_output_paths_are_one_line_errors(reg, finished, two_parts, tmp_path, capsys, case):
    argv = _out_path_cases(tmp_path, finished, two_parts)[case]
    assert main(argv, registry=reg) == 2
    one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("resume", [False, True])
def test_read_only_location_is_a_one_line_error(reg, tmp_path, monkeypatch, capsys, resume):
    real_open = os.open

    def read_only(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and str(path).startswith(str(tmp_path)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    out = tmp_path / "ro"
    if resume:
        out.mkdir()
        (out / "config.json").write_text(json.dumps(REL_HEADER))
    monkeypatch.setattr(os, "open", read_only)
    argv = ["run", "--resume", str(out), "--quiet"] if resume else ["run", "rel-chunks", "--out", str(out), "--quiet"]
    assert main(argv, registry=reg) == 2
    assert "Read-only file system" in one_error_line(capsys.readouterr().err)


# --------------------------------------------------------------------------- 8. a broken third-party factory


def test_an_experiment_factory_that_raises_is_a_plugin_error(reg, capsys):
    assert main(["run", "broken"], registry=reg) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "experiment plugin 'broken'" in line and "this factory is broken" in line
    with pytest.raises(PluginError, match="failed to build"):
        reg.create("experiment", "broken")


# --------------------------------------------------------------------------- 9. export-nir on damaged weights


@pytest.mark.parametrize("damage", ["truncated", "wrong rank"])
def test_export_nir_refuses_a_damaged_weights_file(tmp_path, capsys, damage):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"experiment": "supervised-stdp", "seeds": 1, "first_seed": 0,
                                                     "config": {"seed": 0, "dt_ms": 0.1}}))
    np.savez(run_dir / "weights.npz", W=np.zeros((1, 784, 30), np.float32) if damage == "truncated" else np.zeros(5))
    if damage == "truncated":
        raw = (run_dir / "weights.npz").read_bytes()
        (run_dir / "weights.npz").write_bytes(raw[: len(raw) // 2])
    assert main(["export-nir", str(run_dir), str(tmp_path / "out.nir")]) == 2
    assert "weights.npz" in one_error_line(capsys.readouterr().err)


# --------------------------------------------------------------------------- 10. merge checks


@pytest.fixture(scope="module")
def two_parts(reg, tmp_path_factory):
    root = tmp_path_factory.mktemp("parts")
    assert run(reg, root / "a", seeds=1, chunks=2) == 0
    assert run(reg, root / "b", "--first-seed", "1", seeds=1, chunks=2) == 0
    return root / "a", root / "b"


def _edited_copy(src: Path, dst: Path, edit) -> Path:
    dst.mkdir()
    doc = json.loads((src / "results.json").read_text())
    edit(doc)
    (dst / "results.json").write_text(json.dumps(doc))
    return dst


def test_merge_refuses_mixed_versions_unless_allowed(reg, two_parts, tmp_path, capsys):
    a, b = two_parts
    b2 = _edited_copy(b, tmp_path / "b2", lambda d: d["versions"].update(jax="0.0.1", backend="tpu"))
    assert main(["merge", str(tmp_path / "m"), str(a), str(b2)], registry=reg) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "different versions or backends" in line and "0.0.1" in line and "--allow-mixed" in line
    assert main(["merge", str(tmp_path / "m"), str(a), str(b2), "--allow-mixed"], registry=reg) == 0
    doc = json.loads((tmp_path / "m" / "results.json").read_text())
    assert doc["versions"]["jax"] == "mixed" and "jax" in doc["versions"]["mixed"]
    assert sorted(p["versions"]["jax"] for p in doc["merged_from"]) == sorted([jax.__version__, "0.0.1"])


@pytest.mark.parametrize("damage", ["seeds disagree with per_seed", "no per_seed"])
def test_merge_refuses_an_inconsistent_part(reg, two_parts, tmp_path, capsys, damage):
    a, b = two_parts

    def edit(doc):
        if damage == "no per_seed":
            for m in doc["metrics"].values():
                m.pop("per_seed")
        else:
            doc["seeds"] = 2

    b2 = _edited_copy(b, tmp_path / "b2", edit)
    assert main(["merge", str(tmp_path / "m"), str(a), str(b2)], registry=reg) == 2
    line = one_error_line(capsys.readouterr().err)
    assert re.search(r"per.seed", line) and str(b2) in line, line
    assert not (tmp_path / "m").exists()


# --------------------------------------------------------------------------- 11. strict JSON


def test_results_are_strict_json_with_nan_recorded(reg, tmp_path):
    out = tmp_path / "run"
    assert run(reg, out, "--set", "nan_metric=true", chunks=1) == 0

    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    doc = json.loads((out / "results.json").read_text(), parse_constant=refuse)
    assert doc["metrics"]["undefined"]["per_seed"] == [None, None]
    assert doc["null_values"]["metrics/undefined/per_seed"] == "NaN"
    assert doc["null_values"]["metrics/unbounded/mean"] == "inf"
    assert main(["report", str(out)]) == 0


# --------------------------------------------------------------------------- 12. a damaged config.json on --resume


@pytest.mark.parametrize("field,value", [("config", [1, 2, 3]), ("experiment", 42), ("first_seed", "abc"),
                                         ("seeds", "two")])
def test_resume_with_wrong_types_in_config_json(reg, tmp_path, capsys, field, value):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    saved = dict(REL_HEADER)
    saved[field] = value
    (run_dir / "config.json").write_text(json.dumps(saved))
    assert main(["run", "--resume", str(run_dir), "--quiet"], registry=reg) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "is damaged" in line and repr(field) in line and "--seeds" not in line


# --------------------------------------------------------------------------- 13. seed indices beyond 32 bits


def test_first_seed_beyond_32_bits_is_refused(reg, capsys):
    assert main(["run", "rel-chunks", "--first-seed", str(2**32), "--dry-run"], registry=reg) == 2
    assert "below 2**32" in one_error_line(capsys.readouterr().err)
    assert main(["run", "rel-chunks", "--first-seed", str(2**32 - 2), "--seeds", "3", "--dry-run"], registry=reg) == 2


def test_high_seed_indices_get_their_own_keys():
    from snnjax.seeds import seed_keys

    high = 2**31 + 5
    expected = jax.random.fold_in(jax.random.PRNGKey(0), high)
    np.testing.assert_array_equal(np.asarray(seed_keys(0, 1, high)[0]), np.asarray(expected))
    assert not np.array_equal(np.asarray(seed_keys(0, 1, high)[0]), np.asarray(seed_keys(0, 1, 5)[0]))
    with pytest.raises(ValueError, match="32 bits"):
        seed_keys(0, 1, 2**32)


# --------------------------------------------------------------------------- 14. a closed stdout


def test_closed_stdout_is_quiet():
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "snnjax.cli", "plugins"], cwd=ROOT, env=_env(), stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr
    assert proc.returncode == 141


# --------------------------------------------------------------------------- 15. file modes


def test_artifacts_get_the_mode_of_any_new_file(finished):
    expected = 0o644  # 0o666 under the fixture's umask 022
    for name in ("results.json", "config.json", FILENAME, "weights.npz", "curve.png"):
        assert (finished / name).stat().st_mode & 0o777 == expected, name


# --------------------------------------------------------------------------- 16. SNNJAX_PLUGINS


def test_a_junk_plugin_filter_is_named(monkeypatch):
    monkeypatch.setenv("SNNJAX_PLUGINS", "junk")
    with pytest.raises(PluginError, match="SNNJAX_PLUGINS='junk'"):
        build_registry()
    monkeypatch.setenv("SNNJAX_PLUGINS", "rules")
    reg = build_registry()
    with pytest.raises(PluginError, match="SNNJAX_PLUGINS='rules' limits the plugins"):
        reg.info("experiment", "supervised-stdp")


def test_an_empty_plugin_filter_fails_snnjax_plugins(monkeypatch, capsys):
    from snnjax.plugins import get_registry

    monkeypatch.setenv("SNNJAX_PLUGINS", ",,,")
    get_registry.cache_clear()
    try:
        assert main(["plugins"]) == 2
    finally:
        get_registry.cache_clear()
    assert "names no plugin" in one_error_line(capsys.readouterr().err)


# --------------------------------------------------------------------------- minor ones


def test_idx_images_of_another_size_name_the_dataset_and_file(reg, tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    _write_idx(root / "t10k-images-idx3-ubyte.gz", np.zeros((4, 10, 10)))
    _write_idx(root / "t10k-labels-idx1-ubyte.gz", np.zeros(4))
    with pytest.raises(DataError, match=r"dataset 'mnist': .*t10k-images-idx3-ubyte.gz holds images of 10×10"):
        data.load("mnist", "test", data_dir=str(root), registry=reg)


def test_float_idx_labels_are_refused(tmp_path):
    images, labels = tmp_path / "i.gz", tmp_path / "l"
    _write_idx(images, np.zeros((2, 28, 28)))
    labels.write_bytes(bytes([0, 0, 0x0D, 1]) + (2).to_bytes(4, "big") + np.array([1.7, 2.2], ">f4").tobytes())
    with pytest.raises(DataError, match="labels must be integers"):
        data.read_idx_split(images, labels)


def test_data_dir_with_the_embedded_dataset_is_a_warning(reg, tmp_path):
    with pytest.warns(UserWarning, match="data_dir=.* is ignored"):
        data.load("mnist-embedded", "test", limit=2, data_dir=str(tmp_path), registry=reg)


def test_dataset_unavailable_is_one_line(reg, tmp_path):
    from snnjax.errors import DataUnavailableError

    with pytest.raises(DataUnavailableError) as info:
        data.load("mnist", "test", data_dir=str(tmp_path), registry=reg)
    assert "\n" not in str(info.value) and "mnist-embedded" in str(info.value)
