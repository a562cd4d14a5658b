"""Plugins chosen by name with parameters from the config: TOML tables, dotted ``--set`` keys, the run's registry."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest

import snnjax
from snnjax.cli import main
from snnjax.config import plugin_key, plugin_list, resolve
from snnjax.errors import ConfigError
from snnjax.plugins import build_registry, get_registry


#: a supervised-stdp run small enough for a test (6 neurons, 3 training and 3 test images)
TINY = {"n_exc": 6, "n_rounds": 1, "images_per_round": 3, "n_test": 3, "classes": [0, 1, 2]}

TOML = """
n_exc = 6
n_rounds = 1
images_per_round = 3
n_test = 3
classes = [0, 1, 2]

[rule]
name = "segment-oja"
eta_pre = 2e-4
eta_post = 0.1

[[regularizers]]
name = "use-it-or-lose-it"
k_p = 1
tau_prun_ms = 700
"""

SETS = ["n_exc=6", "n_rounds=1", "images_per_round=3", "n_test=3", "classes=0,1,2",
        "rule.name=segment-oja", "rule.eta_pre=2e-4", "rule.eta_post=0.1",
        "regularizers=use-it-or-lose-it", "regularizers.0.k_p=1", "regularizers.0.tau_prun_ms=700"]



def test_a_table_and_dotted_keys_resolve_alike_with_the_factories_types():
    defaults = {"rule": plugin_key("rule", "stdp"), "regularizers": plugin_list("regularizer")}
    reg = get_registry()
    table = resolve(defaults, ("toml", {"rule": {"name": "segment-oja", "eta_pre": 1}, "regularizers": [
        {"name": "use-it-or-lose-it", "k_p": 1}]}), registry=reg)
    dotted = resolve(defaults, ("--set", {"rule.name": "segment-oja", "rule.eta_pre": "1",
                                          "regularizers.0.name": "use-it-or-lose-it", "regularizers.0.k_p": "1"}),
                     registry=reg)
    assert table == dotted == {"rule": {"name": "segment-oja", "eta_pre": 1.0},
                               "regularizers": [{"name": "use-it-or-lose-it", "k_p": 1.0}]}
    assert isinstance(table["rule"]["eta_pre"], float)  # the type of the factory's default (1e-4)
    # a plain name stays a plain string, so configs written before tables existed resolve unchanged
    assert resolve(defaults, ("--set", {"rule": "all-ltd"}), registry=reg)["rule"] == "all-ltd"
    assert resolve(defaults, registry=reg) == {"rule": "stdp", "regularizers": []}
    # a parameter changed on its own keeps the default plugin; a new name replaces it with no parameters
    assert resolve(defaults, ("--set", {"rule.a_pre": "1e-3"}), registry=reg)["rule"] == {"name": "stdp",
                                                                                        "a_pre": 1e-3}
    assert resolve(defaults, ("toml", {"rule": {"name": "stdp", "a_pre": 1e-3}}), ("--set", {"rule": "all-ltd"}),
                   registry=reg)["rule"] == "all-ltd"


@pytest.mark.parametrize("layer, message", [
    ({"rule.name": "stpd"}, "unknown rule plugin 'stpd'. Did you mean 'stdp'?"),
    ({"rule.a_pr": "1"}, "rule plugin 'stdp' has no parameter 'a_pr'. Did you mean 'a_pre'?"),
    ({"rule.a_pre": "fast"}, "config key 'rule.a_pre' must be a number, got 'fast'"),
    ({"rule": {"pairing": 3}}, "config key 'rule.pairing' must be a string, got 3"),
    ({"regularizers.1.k_p": "1"}, "regularizers.N.PARAMETER needs an index N in 0…0"),
    ({"regularizers.0.k_p": "1"}, "gives parameters 'k_p' but no plugin name"),
    ({"rule.a_pre.x": "1"}, "nested too deep"),
])
def test_bad_choices_are_one_line_config_errors(layer, message):
    defaults = {"rule": plugin_key("rule", "stdp"), "regularizers": plugin_list("regularizer")}
    with pytest.raises(ConfigError) as err:
        resolve(defaults, ("--set", layer), registry=get_registry())
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("sets, message", [
    (["rule.name=segment-ojaa"], "Did you mean 'segment-oja'?"),
    (["rule.name=segment-oja", "rule.eta_pr=1e-4"], "has no parameter 'eta_pr'. Did you mean 'eta_pre'?"),
    (["rule.name=segment-oja", "rule.eta_pre=lots"], "config key 'rule.eta_pre' must be a number, got 'lots'"),
    (["regularizers=use-it-or-loose-it"], "Did you mean 'use-it-or-lose-it'?"),
    (["regularizers=use-it-or-lose-it", "regularizers.0.semantic=lazy"], "no parameter 'semantic'"),
    (["target_rule.a_pre=big"], "config key 'target_rule.a_pre' must be a number, got 'big'"),
])
@pytest.mark.parametrize("dry_run", [True, False])
def test_a_bad_choice_exits_2_with_one_line_before_any_compile(sets, message, dry_run, compiles, tmp_path, capsys):
    argv = ["run", "supervised-stdp", "--quiet", "--out", str(tmp_path / "run")]
    for item in sets:
        argv += ["--set", item]
    assert main(argv + (["--dry-run"] if dry_run else [])) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert compiles == []
    assert not (tmp_path / "run").exists()


def test_dry_run_prints_the_resolved_choices(tmp_path, capsys):
    path = tmp_path / "oja.toml"
    path.write_text(TOML)
    assert main(["run", "supervised-stdp", "--config", str(path), "--dry-run"]) == 0
    config = json.loads(capsys.readouterr().out)["config"]
    assert config["rule"] == {"name": "segment-oja", "eta_pre": 2e-4, "eta_post": 0.1}
    assert config["regularizers"] == [{"name": "use-it-or-lose-it", "k_p": 1.0, "tau_prun_ms": 700.0}]


def test_toml_tables_and_dotted_sets_give_the_same_config_and_metrics(tmp_path):
    path = tmp_path / "oja.toml"
    path.write_text(TOML)
    from_toml = snnjax.run("supervised-stdp", path, seeds=2, out=tmp_path / "toml")
    from_sets = snnjax.run("supervised-stdp", sets=SETS, seeds=2, out=tmp_path / "sets")
    assert from_toml.config == from_sets.config
    assert from_toml.config["regularizers"][0]["name"] == "use-it-or-lose-it"
    assert from_toml.metrics.keys() == from_sets.metrics.keys()
    for key in from_toml.metrics:
        np.testing.assert_array_equal(from_toml.metrics[key], from_sets.metrics[key])
    # and the choice is used: without the regularizer the network learns otherwise
    snnjax.run("supervised-stdp", {**TINY, "rule": {"name": "segment-oja", "eta_pre": 2e-4,
               "eta_post": 0.1}}, seeds=2, out=tmp_path / "plain")
    w_chain = np.load(tmp_path / "toml" / "weights.npz")["W"]
    w_plain = np.load(tmp_path / "plain" / "weights.npz")["W"]
    assert not np.array_equal(w_chain, w_plain)


def test_an_in_process_registrys_plugins_are_chosen_by_name_with_parameters(tmp_path):
    from plugins import regularizers, rules

    calls: list[tuple[str, dict]] = []

    def scaled_stdp(*, scale: float = 1.0, n_classes: int = 3):
        """Trace STDP with both amplitudes scaled (a test rule)."""
        calls.append(("scaled-stdp", {"scale": scale, "n_classes": n_classes}))
        return rules.stdp(a_pre=5e-4 * scale, a_post=-5.25e-4 * scale)

    def quick_decay(*, k_p: float = 1.0, tau_prun_ms: float = 1000.0):
        """use-it-or-lose-it with its own defaults (a test regularizer)."""
        calls.append(("quick-decay", {"k_p": k_p, "tau_prun_ms": tau_prun_ms}))
        return regularizers.use_it_or_lose_it(k_p=k_p, tau_prun_ms=tau_prun_ms)

    mine = types.SimpleNamespace(
        __name__="my_plugins",
        snnjax_learning_rules=snnjax.hookimpl(lambda: {"scaled-stdp": scaled_stdp}),
        snnjax_regularizers=snnjax.hookimpl(lambda: {"quick-decay": quick_decay}),
    )
    registry = build_registry([mine])
    config = {**TINY, "rule": {"name": "scaled-stdp", "scale": 2}, "regularizers": [{"name": "quick-decay",
                                                                                      "tau_prun_ms": 300}]}
    done = snnjax.run("supervised-stdp", config, seeds=2, out=tmp_path / "mine", registry=registry)
    assert done.config["rule"] == {"name": "scaled-stdp", "scale": 2.0}
    assert ("scaled-stdp", {"scale": 2.0, "n_classes": 3}) in calls
    assert ("quick-decay", {"k_p": 1.0, "tau_prun_ms": 300.0}) in calls
    assert len(done.metrics["final_accuracy"]) == 2
    # the global registry does not know them: the run's registry is the one that is asked
    with pytest.raises(ConfigError, match="unknown rule plugin 'scaled-stdp'"):
        snnjax.run("supervised-stdp", config, out=tmp_path / "global")
