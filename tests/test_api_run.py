"""``snnjax.run``: the Python API is the CLI's run (same results, same errors, same run directory rules)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import types
from pathlib import Path

import numpy as np
import pytest

import snnjax
from snnjax import ConfigError, hookimpl
from snnjax.cli import main
from snnjax.experiment import Experiment
from snnjax.experiment import RunResult as ExperimentResult
from snnjax.plugins import build_registry
from snnjax.rundir import OutputError

TINY = {"n_rounds": 1, "images_per_round": 5, "n_test": 5, "n_exc": 9}
SEEDS = 2


ROOT = Path(__file__).resolve().parents[1]


def _snippet(path: Path, marker: str) -> str:
    """The one ```python block of ``path`` that contains ``marker``."""
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", path.read_text(), re.DOTALL) if marker in b]
    return code


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """The README's ``snnjax.run`` example (a tiny supervised-stdp run), and the same run through ``snnjax run``."""
    root = tmp_path_factory.mktemp("api")
    namespace: dict = {}
    cwd = os.getcwd()
    os.chdir(root)
    try:
        exec(compile(_snippet(ROOT / "README.md", "snnjax.run("), "README.md", "exec"), namespace)  # noqa: S102
    finally:
        os.chdir(cwd)
    via_api = namespace["done"]
    (root / "runs" / "api-demo").rename(root / "api")
    via_api = dataclasses.replace(via_api, out_dir=root / "api")
    argv = ["run", "supervised-stdp", "--quiet", "--seeds", str(SEEDS), "--out", str(root / "cli")]
    for key, value in TINY.items():
        argv += ["--set", f"{key}={value}"]
    assert main(argv) == 0
    via_cli = json.loads((root / "cli" / "results.json").read_text())
    return via_api, via_cli, root


def test_api_run_equals_the_cli_run_bit_for_bit(tiny_runs):
    via_api, via_cli, _ = tiny_runs
    assert {k: via_api.config[k] for k in TINY} == TINY, "the README example is no longer the tiny run"
    assert via_api.config == via_cli["config"]
    assert via_api.results["config"] == via_cli["config"]
    assert via_api.seed_ids == [0, 1] and via_api.results["first_seed"] == via_cli["first_seed"] == 0
    assert set(via_api.metrics) == set(via_cli["metrics"])
    for name, values in via_api.metrics.items():
        assert values.shape[0] == SEEDS, name
        # the JSON numbers round-trip float64 exactly, so equality here is bit-identity
        np.testing.assert_array_equal(np.asarray(via_cli["metrics"][name]["per_seed"], dtype=float),
                                      values.astype(float), err_msg=name)
        assert via_api.results["metrics"][name]["per_seed"] == via_cli["metrics"][name]["per_seed"], name


def test_api_run_writes_the_cli_run_directory(tiny_runs):
    via_api, _, root = tiny_runs
    on_disk = json.loads((root / "api" / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(via_api.results))
    assert on_disk["complete"] is True
    assert sorted(p.name for p in (root / "api").iterdir()) == sorted(p.name for p in (root / "cli").iterdir())
    header = json.loads((root / "api" / "config.json").read_text())
    assert header == {"experiment": "supervised-stdp", "seeds": SEEDS, "first_seed": 0, "config": via_api.config}


def test_a_second_run_into_the_same_directory_is_refused(tiny_runs):
    _, _, root = tiny_runs
    before = (root / "api" / "results.json").read_bytes()
    with pytest.raises(OutputError, match="holds another run"):
        snnjax.run("supervised-stdp", TINY, out=root / "api")
    assert (root / "api" / "results.json").read_bytes() == before



def test_a_bad_config_is_the_cli_error_before_any_compile(tmp_path, capsys, compiles):
    toml = tmp_path / "bad.toml"
    toml.write_text("[experiment]\nn_exc = 31\n")
    with pytest.raises(ConfigError) as api_error:
        snnjax.run("supervised-stdp", toml, out=tmp_path / "api")
    assert main(["run", "supervised-stdp", "--quiet", "--config", str(toml), "--out", str(tmp_path / "cli")]) == 2
    assert capsys.readouterr().err == f"error: {api_error.value}\n"
    with pytest.raises(ConfigError, match="unknown config key 'n_round'.*Did you mean 'n_rounds'"):
        snnjax.run("supervised-stdp", {"n_round": 3})
    with pytest.raises(ConfigError, match="cannot be split into 3 equal segments"):
        snnjax.run("supervised-stdp", {"n_exc": 30}, sets=["n_exc=31"])
    with pytest.raises(ConfigError, match="mapping of config keys or the path of a TOML file"):
        snnjax.run("supervised-stdp", ["n_exc=31"])
    assert compiles == [], f"{len(compiles)} compile/trace event(s) before the error"
    assert not (tmp_path / "api").exists() and not (tmp_path / "cli").exists()


# --------------------------------------------------------------------------- an in-process plugin

def _counting_run(ctx) -> ExperimentResult:
    """Per seed s: the first ``n`` draws of the seed's own generator, summed (no JAX needed)."""
    sums = [np.random.default_rng(s).random(ctx.config["n"]).sum() for s in ctx.seed_ids]
    if ctx.config["stop"]:
        ctx.partial = ExperimentResult(metrics={"total": np.asarray(sums)})
        raise KeyboardInterrupt
    return ExperimentResult(metrics={"total": np.asarray(sums)}, extra={"registry": "in-process"})


MINE = types.SimpleNamespace(__name__="my_inprocess_plugins", snnjax_experiments=hookimpl(
    lambda: {"my-counting": lambda: Experiment("my-counting", "sums of uniform draws (test)",
                                               {"seed": 0, "n": 4, "stop": False}, _counting_run)}))


def test_a_registry_with_an_in_process_plugin_is_used(tmp_path):
    registry = build_registry([MINE], use_entry_points=False)
    with pytest.raises(snnjax.PluginError, match="unknown experiment plugin 'my-counting'"):
        snnjax.run("my-counting")
    done = snnjax.run("my-counting", {"n": 7}, seeds=3, first_seed=2, registry=registry, out=tmp_path / "mine")
    expected = [np.random.default_rng(s).random(7).sum() for s in (2, 3, 4)]
    np.testing.assert_array_equal(done.metrics["total"], expected)
    assert done.results["extra"] == {"registry": "in-process"} and done.config["n"] == 7
    assert json.loads((tmp_path / "mine" / "results.json").read_text())["metrics"]["total"]["per_seed"] == expected


def test_out_none_keeps_nothing_on_disk(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    done = snnjax.run("my-counting", registry=build_registry([MINE], use_entry_points=False))
    assert done.out_dir is None and done.results["complete"] is True and done.results["artifacts"] == []
    assert done.metrics["total"].shape == (1,)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["tmp"]


def test_an_interrupted_run_keeps_its_finished_part_and_raises(tmp_path):
    registry = build_registry([MINE], use_entry_points=False)
    with pytest.raises(snnjax.RunStopped) as stopped:
        snnjax.run("my-counting", {"stop": True}, seeds=2, registry=registry, out=tmp_path / "stopped")
    assert stopped.value.signum == 2 and isinstance(stopped.value, KeyboardInterrupt)
    partial = json.loads((tmp_path / "stopped" / "results.json").read_text())
    assert partial["complete"] is False and partial["stopped_by"] == "interrupted"
    assert len(partial["metrics"]["total"]["per_seed"]) == 2
    assert main(["run", "my-counting", "--quiet", "--set", "stop=true", "--out", str(tmp_path / "cli")],
                registry=registry) == 130


def test_resume_needs_the_run_directory():
    with pytest.raises(ConfigError, match="resume=True continues the run in out"):
        snnjax.run("supervised-stdp", resume=True)


def test_the_api_page_example_runs(capsys):
    namespace: dict = {}
    exec(compile(_snippet(ROOT / "docs" / "api.md", "snnjax.run("), "docs/api.md", "exec"), namespace)  # noqa: S102
    np.testing.assert_array_equal(namespace["done"].metrics["total"], [0.0, 2.0, 4.0])
    assert namespace["done"].out_dir is None


def test_resume_continues_an_interrupted_run_to_the_uninterrupted_result(tmp_path, monkeypatch):
    from tests.test_checkpoint import INTERRUPT_ENV, fake_registry

    registry = fake_registry()
    monkeypatch.setenv(INTERRUPT_ENV, "3")
    with pytest.raises(snnjax.RunStopped):
        snnjax.run("fake-chunks", seeds=2, out=tmp_path / "run", registry=registry)
    monkeypatch.delenv(INTERRUPT_ENV)
    with pytest.raises(ConfigError, match="has 2 seed"):
        snnjax.run(None, seeds=3, out=tmp_path / "run", resume=True, registry=registry)
    resumed = snnjax.run(None, out=tmp_path / "run", resume=True, registry=registry)
    whole = snnjax.run("fake-chunks", seeds=2, registry=registry)
    assert resumed.results["complete"] is True and resumed.out_dir == tmp_path / "run"
    for name, values in whole.metrics.items():
        np.testing.assert_array_equal(resumed.metrics[name], values, err_msg=name)
