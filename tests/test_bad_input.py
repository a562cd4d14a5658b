"""Bad input anywhere — CLI, config, data layer, Python API, checkpoints, plugins — gets a
clear error that names the problem, before anything is compiled; the CLI prints one line
(no traceback) and leaves no output files behind.

``docs/errors.md`` lists these cases; ``test_errors_page_lists_every_case`` keeps the two in step.
"""

from __future__ import annotations

import gzip
import json
import re
import types
from pathlib import Path

import numpy as np
import pytest

from snnjax import hookimpl
from snnjax.cli import main
from snnjax.errors import CheckpointError, ConfigError, DataError, DataUnavailableError, InputError, PluginError
from snnjax.results import MergeError

ROOT = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------------------------------------
# CLI cases: argv (with {tmp} for a scratch directory) → a fragment of the one-line error
# ------------------------------------------------------------------------------------------------

CLI_CASES = {
    "unknown experiment": (["run", "supervised-stdpp"], "Did you mean 'supervised-stdp'"),
    "unknown --set key": (["run", "supervised-stdp", "--set", "n_round=3"], "Did you mean 'n_rounds'"),
    "--set without =": (["run", "supervised-stdp", "--set", "n_rounds"], "--set expects key=value"),
    "integer key given text": (["run", "supervised-stdp", "--set", "n_rounds=many"], "must be an integer"),
    "boolean key given text": (["run", "supervised-stdp", "--set", "adaptive_threshold=maybe"], "must be true or false"),
    "zero seeds": (["run", "supervised-stdp", "--seeds", "0"], "--seeds must be a positive integer"),
    "missing config file": (["run", "supervised-stdp", "--config", "{tmp}/nope.toml"], "does not exist"),
    "invalid TOML": (["run", "supervised-stdp", "--config", "{tmp}/bad.toml"], "is not valid TOML"),
    "unknown key in config file": (["run", "supervised-stdp", "--config", "{tmp}/unknown.toml"], "Did you mean 'n_test'"),
    "segments do not divide the neurons": (["run", "supervised-stdp", "--set", "n_exc=31"], "cannot be split into 3 equal segments"),
    "zero training images": (["run", "supervised-stdp", "--set", "images_per_round=0"], "images_per_round must be a positive integer"),
    "classes not in the dataset": (["run", "supervised-stdp", "--set", "classes=3,8,42"], "classes [42] are not in dataset"),
    "unknown rule plugin": (["run", "supervised-stdp", "--set", "rule=stdpp"], "unknown rule plugin 'stdpp'"),
    "rule_params not a table": (["run", "supervised-stdp", "--set", "rule=segment-oja", "--set", "rule_params=[1, 2]"],
                                "rule_params must be a table"),
    "rule_params for the thesis' rule": (["run", "supervised-stdp", "--set", "rule_params={'eta_pre': 1e-4}"],
                                         "rule_params is for a rule other than segment-supervised"),
    "unknown parameter of a rule": (["run", "supervised-stdp", "--set", "rule=segment-oja", "--set",
                                     "rule_params={'eta': 1e-4}"], "has no parameter 'eta'"),
    "misspelt plugin chosen in a table": (["run", "supervised-stdp", "--set", "rule.name=segment-ojaa"],
                                          "Did you mean 'segment-oja'"),
    "unknown parameter of a plugin table": (["run", "supervised-stdp", "--set", "rule.name=segment-oja", "--set",
                                             "rule.eta_pr=1e-4"], "has no parameter 'eta_pr'. Did you mean 'eta_pre'"),
    "ill-typed parameter of a plugin table": (["run", "supervised-stdp", "--set", "rule.name=segment-oja", "--set",
                                               "rule.eta_pre=lots"], "config key 'rule.eta_pre' must be a number"),
    "plugin parameters without a name": (["run", "supervised-stdp", "--set", "regularizers.0.k_p=1"],
                                         "gives parameters 'k_p' but no plugin name"),
    "unknown regularizer in the chain": (["run", "diehl-cook", "--set", "regularizers=use-it-or-loose-it"],
                                         "Did you mean 'use-it-or-lose-it'"),
    "rule parameter out of range": (["run", "supervised-stdp", "--set", "rule=segment-oja", "--set",
                                     "rule_params={'eta_post': 1.5}"], "must be < 1"),
    "non-positive initial weight range": (["run", "supervised-stdp", "--set", "w_init_high=0"], "w_init_high"),
    "non-positive dt": (["run", "supervised-stdp", "--set", "dt_ms=0"], "dt_ms must be a positive"),
    "unknown dataset": (["run", "supervised-stdp", "--set", "dataset=mnist-embeded"], "Did you mean 'mnist-embedded'"),
    "dataset unavailable offline": (["run", "supervised-stdp", "--set", "dataset=mnist", "--set", "data_dir={tmp}/empty"],
                                    "mnist-embedded"),
    "inconsistent diehl-cook window": (["run", "diehl-cook", "--set", "n_train=10", "--set", "assign_window=20"],
                                       "assign_window=20 exceeds n_train=10"),
    "use-it-or-lose-it with no decay at all": (["run", "use-it-or-lose-it", "--set", "k_p_flush=0"],
                                               "needs k_p_flush = 1 and a flush"),
    "use-it-or-lose-it decaying twice": (["run", "use-it-or-lose-it", "--set", "semantics=continuous", "--set",
                                          "k_p_train=1", "--set", "flush=exact"], "would apply it twice"),
    "use-it-or-lose-it with no training pass": (["run", "use-it-or-lose-it", "--set", "passes=0"],
                                                "passes must be a positive number"),
    "resume a directory that is not a run": (["run", "--resume", "{tmp}/empty"], "config.json"),
    "report without results": (["report", "{tmp}/empty"], "results.json"),
    "plot of a corrupt results file": (["plot", "{tmp}/corrupt"], "not valid JSON"),
    "negative seed": (["run", "supervised-stdp", "--set", "seed=-1"], "must be an integer in 0…4294967295"),
    "seed beyond 32 bits": (["run", "supervised-stdp", "--set", "seed=1e20"], "must be an integer in 0…4294967295"),
    "infinite dt": (["run", "supervised-stdp", "--set", "dt_ms=1e309"], "must be a finite number"),
    "NaN in a config file": (["run", "supervised-stdp", "--config", "{tmp}/nan.toml"], "must be a finite number"),
    "first seed beyond 32 bits": (["run", "supervised-stdp", "--first-seed", "4294967296"], "below 2**32"),
    "config file is a directory": (["run", "supervised-stdp", "--config", "{tmp}/empty"], "is a directory"),
    "inline table in a config file": (["run", "supervised-stdp", "--config", "{tmp}/inline.toml"],
                                      "must be an integer"),
    "key twice in a config file": (["run", "supervised-stdp", "--config", "{tmp}/twice.toml"],
                                   "both at the top level and in [experiment]"),
    "resume with a damaged config.json": (["run", "--resume", "{tmp}/damaged"], "'config' must be a table"),
    "report --out a directory": (["report", "{tmp}/corrupt", "--out", "{tmp}/empty"], "is a directory"),
    "merge into a file": (["merge", "{tmp}/bad.toml", "{tmp}/empty", "{tmp}/corrupt"], "is an existing file"),
    "export-nir to a directory": (["export-nir", "{tmp}/empty", "{tmp}/empty"], "is a directory"),
}


def make_scratch(root: Path) -> Path:
    """The files the CLI cases refer to as {tmp}/..."""
    (root / "bad.toml").write_text("n_rounds = = 3\n")
    (root / "unknown.toml").write_text("n_tset = 3\n")
    (root / "empty").mkdir()
    (root / "corrupt").mkdir()
    (root / "corrupt" / "results.json").write_text("{not json")
    (root / "nan.toml").write_text("dt_ms = nan\n")
    (root / "inline.toml").write_text("n_rounds = {value = 3}\n")
    (root / "twice.toml").write_text("n_rounds = 3\n[experiment]\nn_rounds = 4\n")
    (root / "damaged").mkdir()
    (root / "damaged" / "config.json").write_text('{"experiment": "supervised-stdp", "seeds": 1, "config": [1, 2, 3]}')
    return root


@pytest.fixture
def scratch(tmp_path):
    return make_scratch(tmp_path)


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_cli_bad_input(case, scratch, capsys):
    argv, fragment = CLI_CASES[case]
    out_dir = scratch / "out"
    argv = [a.replace("{tmp}", str(scratch)) for a in argv]
    if argv[0] == "run" and "--resume" not in argv:
        argv += ["--out", str(out_dir), "--quiet"]
    before = sorted(p.relative_to(scratch) for p in scratch.rglob("*"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: "), err
    assert "Traceback" not in err
    assert fragment in err, err
    assert sorted(p.relative_to(scratch) for p in scratch.rglob("*")) == before, "partial output left behind"


# ------------------------------------------------------------------------------------------------
# Python API cases
# ------------------------------------------------------------------------------------------------


def _thesis_present(image):
    import jax

    from snnjax_plugins import network as net
    from snnjax_plugins.rules import stdp

    cfg = net.thesis_config()
    rule = stdp()
    state = net.init_network(jax.random.PRNGKey(0), cfg, rule)
    return net.present(state, image, jax.random.PRNGKey(1), cfg, rule)


def _raising_plugin():
    mod = types.ModuleType("raising_plugin")

    @hookimpl
    def snnjax_learning_rules():
        raise RuntimeError("the plugin is broken")

    mod.snnjax_learning_rules = snnjax_learning_rules
    return mod


def _corrupt_idx(tmp):
    d = tmp / "idx"
    d.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        with gzip.open(d / name, "wb") as fh:
            fh.write(b"\x00\x00\x08\x03garbage")
    from snnjax import data

    return data.load("mnist", "train", data_dir=str(d))


def _mismatched_checkpoint(tmp):
    import jax.numpy as jnp

    from snnjax.checkpoint import Checkpointer

    Checkpointer(tmp, experiment="x", config={"a": 1}, n_seeds=2).save(1, {"w": jnp.zeros(3)})
    return Checkpointer(tmp, experiment="x", config={"a": 2}, n_seeds=2).load({"w": jnp.zeros(3)})


def _raising_factory():
    from snnjax.plugins import build_registry

    def broken():
        raise RuntimeError("the factory is broken")

    mod = types.SimpleNamespace(__name__="broken_factory", snnjax_experiments=hookimpl(lambda: {"broken": broken}))
    return build_registry([mod], use_entry_points=False).create("experiment", "broken")


def _mixed_merge(tmp):
    from snnjax.results import merge_results

    def part(first, jax_version):
        return {"experiment": "x", "seeds": 1, "first_seed": first, "config": {}, "versions": {"jax": jax_version},
                "metrics": {"m": {"mean": 1.0, "std": 0.0, "per_seed": [1.0]}}}

    return merge_results([part(0, "0.4.30"), part(1, "0.4.31")], ["A", "B"])


def _api_cases():
    from snnjax import data
    from snnjax.plasticity import clip
    from snnjax.plugins import build_registry, get_registry
    from snnjax_plugins import network as net
    from snnjax_plugins.encoders import PoissonEncoder
    from snnjax_plugins.neurons import ConductanceLIF
    from snnjax_plugins.rules import segment_gate

    good = np.full(784, 100.0, np.float32)
    nan = good.copy()
    nan[3] = np.nan
    return {
        "image of the wrong shape": (lambda tmp: _thesis_present(np.zeros((10, 10))), InputError, "got shape"),
        "image with NaN": (lambda tmp: _thesis_present(nan), InputError, "NaN"),
        "image with negative intensities": (lambda tmp: _thesis_present(-good), InputError, "negative intensities"),
        "image of strings": (lambda tmp: _thesis_present(np.array(["a"] * 784)), InputError, "must be numbers"),
        "dt of zero": (lambda tmp: ConductanceLIF(dt_ms=0.0), ConfigError, "dt_ms"),
        "negative membrane time constant": (lambda tmp: ConductanceLIF(tau_m_ms=-1.0), ConfigError, "tau_m_ms"),
        "negative rate": (lambda tmp: PoissonEncoder(max_rate_hz=-1.0), ConfigError, "max_rate_hz"),
        "zero excitatory neurons": (lambda tmp: net.thesis_config(n_exc=0), ConfigError, "n_exc"),
        "unknown plugin name": (lambda tmp: get_registry().get("rule", "stpd"), PluginError, "Did you mean 'stdp'"),
        "unknown plugin parameter": (lambda tmp: get_registry().create("rule", "stdp", tau_pree_ms=3.0), PluginError,
                                     "has no parameter 'tau_pree_ms'"),
        "a plugin that raises": (lambda tmp: build_registry([_raising_plugin()], use_entry_points=False), PluginError,
                                 "the plugin is broken"),
        "classes not in a dataset": (lambda tmp: data.load("mnist-embedded", "train", classes=[11]), ConfigError, "11"),
        "empty selection (limit 0)": (lambda tmp: data.load("mnist-embedded", "train", limit=0), ConfigError,
                                      "positive integer"),
        "images with NaN": (lambda tmp: data.validate_images(np.full((2, 28, 28), np.nan)), InputError, "NaN"),
        "unreadable IDX file": (_corrupt_idx, DataError, "IDX"),
        "dataset missing offline": (lambda tmp: data.load("fashion_mnist", "train", data_dir=str(tmp)),
                                    DataUnavailableError, "mnist-embedded"),
        "mismatched checkpoint": (_mismatched_checkpoint, CheckpointError, "'config' differs"),
        "segments that do not divide the neurons": (lambda tmp: segment_gate(0, 31, 3), ConfigError, "31"),
        "bounds with low ≥ high": (lambda tmp: clip(0.05, 0.0), ConfigError, "low < high"),
        "a plugin factory that raises": (lambda tmp: _raising_factory(), PluginError, "failed to build"),
        "merge of runs with other versions": (_mixed_merge, MergeError, "different versions"),
    }


API_CASE_NAMES = sorted(_api_cases())


@pytest.mark.parametrize("case", API_CASE_NAMES)
def test_api_bad_input(case, tmp_path):
    fn, exc_type, fragment = _api_cases()[case]
    with pytest.raises(exc_type) as info:
        fn(tmp_path)
    assert re.search(re.escape(fragment), str(info.value)), str(info.value)


def test_at_least_thirty_cases():
    assert len(CLI_CASES) + len(API_CASE_NAMES) >= 30


def test_errors_page_lists_every_case():
    page = (ROOT / "docs" / "errors.md").read_text()
    missing = [c for c in list(CLI_CASES) + API_CASE_NAMES if f"| {c} |" not in page]
    assert not missing, f"docs/errors.md lacks rows for: {missing}"
