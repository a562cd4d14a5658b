"""The ``snnjax`` command line: plugins, data, run, errors, the example plugin package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from snnjax.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_plugins_lists_builtins_by_kind(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    for kind in ("neurons:", "encoders:", "rules:", "datasets:", "experiments:"):
        assert kind in out
    for name in ("stdp", "all-ltd", "segment-supervised", "poisson", "conductance-lif", "mnist-embedded",
                 "supervised-stdp", "diehl-cook"):
        assert name in out


def test_plugins_json(capsys):
    assert main(["plugins", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    stdp = next(r for r in rows if r["name"] == "stdp")
    assert stdp["kind"] == "rule" and stdp["distribution"] == "snnjax" and stdp["doc"]


def test_data_lists_embedded(capsys):
    assert main(["data"]) == 0
    out = capsys.readouterr().out
    assert "mnist-embedded" in out and "mnist" in out


def test_unknown_experiment_is_a_clear_error(capsys):
    assert main(["run", "supervised-stdpp"]) == 2
    err = capsys.readouterr().err
    assert "unknown experiment plugin 'supervised-stdpp'" in err and "Did you mean 'supervised-stdp'" in err


def test_unknown_set_key_suggests(capsys, tmp_path):
    assert main(["run", "supervised-stdp", "--set", "n_round=3", "--out", str(tmp_path / "o")]) == 2
    assert "Did you mean 'n_rounds'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_dry_run_prints_resolved_config(capsys):
    assert main(["run", "supervised-stdp", "--dry-run", "--set", "n_rounds=3", "--seeds", "4"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["config"]["n_rounds"] == 3 and doc["seeds"] == 4


@pytest.mark.parametrize(
    "sets, message",
    [
        (["n_exc=31"], "cannot be split into 3 equal segments"),
        (["images_per_round=0"], "images_per_round must be a positive integer"),
        (["classes=3,8,42"], "classes [42] are not in dataset"),
        (["classes=3,8"], "lists 2 classes but n_classes=3"),
        (["rule=no-such-rule"], "unknown rule plugin 'no-such-rule'"),
        (["dt_ms=-0.1"], "dt_ms must be a positive"),
        (["dataset=mnist-embeded"], "Did you mean 'mnist-embedded'"),
    ],
)
def test_bad_configs_fail_before_compiling(sets, message, capsys, tmp_path):
    argv = ["run", "supervised-stdp", "--quiet", "--out", str(tmp_path / "o")]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_example_plugin_package_installs_and_is_used(tmp_path, monkeypatch):
    """pip-installing examples/snnjax-symmetric-stdp makes its rule appear and usable by name.

    Installed without dependencies or build isolation (nothing is downloaded; the build backend is the
    test environment's setuptools), then found through its entry point and run in this process."""
    from snnjax.plugins import build_registry

    target = tmp_path / "site"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), str(ROOT / "examples" / "snnjax-symmetric-stdp")],
        capture_output=True, text=True, timeout=300,
    )
    assert pip.returncode == 0, pip.stderr[-2000:]
    monkeypatch.syspath_prepend(str(target))
    reg = build_registry()
    (info,) = [p for p in reg.all() if p.kind == "rule" and p.name == "symmetric-stdp"]
    assert info.distribution == "snnjax-symmetric-stdp"
    out = tmp_path / "run"
    argv = ["run", "supervised-stdp", "--quiet", "--out", str(out), "--set", "rule=symmetric-stdp",
            "--set", "n_rounds=1", "--set", "images_per_round=3", "--set", "n_test=3", "--set", "dt_ms=0.5"]
    assert main(argv, registry=reg) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["rule"] == "symmetric-stdp"
    assert len(results["metrics"]["accuracy"]["per_seed"][0]) == 1


def test_every_experiment_has_a_valid_example_config(capsys):
    from snnjax.plugins import get_registry

    configs = {p.stem: p for p in (ROOT / "examples" / "configs").glob("*.toml")}
    for name in get_registry().names("experiment"):
        assert name in configs, f"examples/configs/{name}.toml is missing"
        assert main(["run", name, "--config", str(configs[name]), "--dry-run"]) == 0, name
    capsys.readouterr()
