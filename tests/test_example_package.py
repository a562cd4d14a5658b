"""The example third-party package, pip-installed, used by name from TOML files by two experiments.

``examples/snnjax-symmetric-stdp`` is installed without dependencies, build isolation or an index
(nothing is downloaded; the build backend is the test environment's setuptools) into a temporary
target directory. Subprocesses with that directory on ``PYTHONPATH`` then run, over 4 vmapped seeds,

* ``snnjax run supervised-stdp`` with the package's rule ``symmetric-stdp`` (it declares its fast
  form) and regularizer ``synaptic-scaling`` chosen by name, with parameters, in a TOML file;
* ``snnjax run conv-mnist`` with the package's inhibition ``global-wta`` chosen by name in a TOML file
  as the winner selection of the STDP layers;

and the same configs without the plugins. The plugins must show in ``results.json``'s config and in
``snnjax plugins``, and change what the networks learn.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "snnjax-symmetric-stdp"
SEEDS = 4

SUPERVISED = """
n_exc = 6
n_rounds = 1
images_per_round = 3
n_test = 3
classes = [0, 1, 2]
dt_ms = 0.5
"""

SUPERVISED_PLUGINS = """
[rule]
name = "symmetric-stdp"
amplitude = 2e-3

[[regularizers]]
name = "synaptic-scaling"
target = 0.5
tau_ms = 200
"""

CONV = """
n_train = 8
n_test = 4
epochs1 = 1
epochs2 = 0
epochs3 = 1
feature_readout = false
"""

CONV_PLUGINS = """
[inhibition]
name = "global-wta"
"""

CLI = "import sys; from snnjax.cli import main; sys.exit(main(sys.argv[1:]))"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict[str, str]:
    """The environment of a process that sees the installed example package."""
    target = tmp_path_factory.mktemp("site")
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), str(EXAMPLE)],
        capture_output=True, text=True, timeout=300,
    )
    assert pip.returncode == 0, pip.stderr[-2000:]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(target), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("JAX_PLATFORMS", "cpu")
    # the default and the plugin runs share most programs through the suite's compile cache (conftest.py)
    env.pop("SNNJAX_PLUGINS", None)
    return env


def snnjax(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-c", CLI, *argv], env=env, capture_output=True, text=True, timeout=600,
                          cwd=ROOT)
    assert done.returncode == 0, (argv, done.stderr[-3000:])
    return done


def run(env: dict[str, str], tmp: Path, experiment: str, toml: str, name: str) -> dict:
    config = tmp / f"{name}.toml"
    config.write_text(toml)
    out = tmp / name
    snnjax(env, "run", experiment, "--config", str(config), "--seeds", str(SEEDS), "--quiet", "--out", str(out))
    return json.loads((out / "results.json").read_text())


def test_the_installed_package_lists_its_plugins(site):
    listed = json.loads(snnjax(site, "plugins", "--json").stdout)
    mine = {(p["kind"], p["name"]) for p in listed if p["distribution"] == "snnjax-symmetric-stdp"}
    assert mine == {("rule", "symmetric-stdp"), ("regularizer", "synaptic-scaling"), ("inhibition", "global-wta")}


def test_supervised_stdp_runs_the_packages_rule_and_regularizer_from_a_toml_file(site, tmp_path):
    mine = run(site, tmp_path, "supervised-stdp", SUPERVISED + SUPERVISED_PLUGINS, "plugins")
    assert mine["config"]["rule"] == {"name": "symmetric-stdp", "amplitude": 2e-3}
    assert mine["config"]["regularizers"] == [{"name": "synaptic-scaling", "target": 0.5, "tau_ms": 200.0}]
    assert len(mine["metrics"]["final_accuracy"]["per_seed"]) == SEEDS
    default = run(site, tmp_path, "supervised-stdp", SUPERVISED, "default")
    assert default["config"]["rule"] == "segment-supervised" and default["config"]["regularizers"] == []
    w_mine = np.load(tmp_path / "plugins" / "weights.npz")["W"]
    w_default = np.load(tmp_path / "default" / "weights.npz")["W"]
    assert w_mine.shape == w_default.shape and w_mine.shape[0] == SEEDS
    # synaptic scaling drives every column's sum towards its target (0.5) from the initial sums (> 5)
    assert not np.allclose(w_mine, w_default)
    assert np.all(w_mine.sum(axis=1) < w_default.sum(axis=1))


def test_conv_mnist_runs_the_packages_inhibition_from_a_toml_file(site, tmp_path):
    mine = run(site, tmp_path, "conv-mnist", CONV + CONV_PLUGINS, "plugins")
    assert mine["config"]["inhibition"] == "global-wta"
    default = run(site, tmp_path, "conv-mnist", CONV, "default")
    assert default["config"]["inhibition"] == "k-wta"
    conv_mine = np.asarray(mine["extra"]["diagnostics"]["convergence"]["layer1"])
    conv_default = np.asarray(default["extra"]["diagnostics"]["convergence"]["layer1"])
    assert conv_mine.shape == conv_default.shape == (SEEDS,)
    # other winners learn: layer 1 ends elsewhere on every seed
    assert np.all(conv_mine != conv_default)
