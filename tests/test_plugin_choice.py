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
    (["regularizers=use-it-or-lose-it", "regularizers.0.k_p=-1"],
     "config key 'regularizers.0': k_p must be 0 (no decay) or 1 (decay), got -1.0"),
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


# --------------------------------------------------------------------------- neuron model and encoder by name
# (every experiment of the Diehl & Cook / thesis family: supervised-stdp, diehl-cook, use-it-or-lose-it)

FAMILY = ["supervised-stdp", "diehl-cook", "use-it-or-lose-it"]


@pytest.mark.parametrize("experiment", FAMILY)
@pytest.mark.parametrize("sets, message", [
    (["neuron=conductance-lfi"], "unknown neuron plugin 'conductance-lfi'. Did you mean 'conductance-lif'?"),
    (["neuron.tau_m=80"], "has no parameter 'tau_m'. Did you mean 'tau_m_ms'?"),
    (["neuron.tau_m_ms=slow"], "config key 'neuron.tau_m_ms' must be a number, got 'slow'"),
    (["encoder=poison"], "unknown encoder plugin 'poison'. Did you mean 'poisson'?"),
    (["encoder.max_rate=50"], "encoder plugin 'poisson' has no parameter 'max_rate'. Did you mean 'max_rate_hz'?"),
    (["encoder.max_rate_hz=fast"], "config key 'encoder.max_rate_hz' must be a number, got 'fast'"),
    # values the factories refuse: found by building the choice while the config is checked
    (["neuron.tau_m_ms=-5"], "config key 'neuron': tau_m_ms must be a positive number of ms, got -5.0"),
    (["encoder.max_rate_hz=-3"], "config key 'encoder': max_rate_hz must be ≥ 0 Hz, got -3.0"),
    # plugins that exist but cannot serve in this network (what the key's check asks of the built plugin)
    (["neuron=lif"], "config key 'neuron': the excitatory neuron model LIF cannot run in this network: its state has "
                     "no conductances ge, gi"),
    (["inh_neuron=lif"], "config key 'inh_neuron': the inhibitory neuron model LIF cannot run in this network"),
    (["encoder=dog-latency"], "config key 'encoder': the encoder DogLatencyEncoder cannot drive this network"),
])
@pytest.mark.parametrize("dry_run", [True, False])
def test_a_bad_neuron_or_encoder_exits_2_with_one_line_before_any_compile(experiment, sets, message, dry_run,
                                                                          compiles, tmp_path, capsys):
    argv = ["run", experiment, "--quiet", "--out", str(tmp_path / "run")]
    for item in sets:
        argv += ["--set", item]
    assert main(argv + (["--dry-run"] if dry_run else [])) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert compiles == []
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("sets, message", [
    (["target_rule=stpd"], "unknown rule plugin 'stpd'. Did you mean 'stdp'?"),
    (["other_rule.a_postt=1e-3"], "rule plugin 'all-ltd' has no parameter 'a_postt'"),
    (["target_rule.a_pre=big"], "config key 'target_rule.a_pre' must be a number, got 'big'"),
])
@pytest.mark.parametrize("dry_run", [True, False])
def test_use_it_or_lose_it_checks_its_segment_rules_before_any_compile(sets, message, dry_run, compiles, tmp_path,
                                                                        capsys):
    argv = ["run", "use-it-or-lose-it", "--quiet", "--out", str(tmp_path / "run")]
    for item in sets:
        argv += ["--set", item]
    assert main(argv + (["--dry-run"] if dry_run else [])) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert compiles == []


@pytest.mark.parametrize("experiment, sets, message", [
    ("supervised-stdp", ["encoder=dog-latency"], "cannot drive this network"),
    ("diehl-cook", ["encoder=dog-latency"], "cannot drive this network"),
    ("use-it-or-lose-it", ["encoder=dog-latency"], "cannot drive this network"),
    ("supervised-stdp", ["neuron.dt_ms=0.2"], "the exc neuron model has dt_ms=0.2 but the network dt_ms=0.1"),
    ("diehl-cook", ["encoder.dt_ms=0.1"], "the encoder has dt_ms=0.1 but the network dt_ms=0.5"),
])
def test_a_part_the_network_cannot_run_is_a_one_line_error_before_any_compile(experiment, sets, message, compiles,
                                                                             tmp_path, capsys):
    argv = ["run", experiment, "--quiet", "--out", str(tmp_path / "run")]
    for item in sets:
        argv += ["--set", item]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert compiles == []


def test_dry_run_prints_the_resolved_neuron_and_encoder(tmp_path, capsys):
    path = tmp_path / "parts.toml"
    path.write_text('[neuron]\nname = "conductance-lif"\ntau_m_ms = 80\n\n[encoder]\nname = "poisson"\n'
                    'max_rate_hz = 50\n')
    assert main(["run", "use-it-or-lose-it", "--config", str(path), "--set", "target_rule.a_pre=2e-4",
                 "--dry-run"]) == 0
    config = json.loads(capsys.readouterr().out)["config"]
    assert config["neuron"] == {"name": "conductance-lif", "tau_m_ms": 80.0}
    assert config["encoder"] == {"name": "poisson", "max_rate_hz": 50.0}
    assert config["target_rule"] == {"name": "stdp", "a_pre": 2e-4} and config["other_rule"] == "all-ltd"


def test_the_default_parts_given_by_name_with_their_default_parameters_give_the_same_run(tmp_path):
    """The default neuron model and encoder written out as tables with their default values: the same
    program, per-seed metrics and weights bit for bit; a changed parameter changes the run."""
    tables = {"neuron": {"name": "conductance-lif", "tau_m_ms": 100.0, "v_th_mv": -52.0},
              "encoder": {"name": "poisson", "max_rate_hz": 63.75}, "dt_ms": 0.5}
    plain = snnjax.run("supervised-stdp", {**TINY, "dt_ms": 0.5}, seeds=2, out=tmp_path / "plain")
    named = snnjax.run("supervised-stdp", {**TINY, **tables}, seeds=2, out=tmp_path / "named")
    for key in plain.metrics:
        np.testing.assert_array_equal(plain.metrics[key], named.metrics[key], err_msg=key)
    w_plain = np.load(tmp_path / "plain" / "weights.npz")["W"]
    np.testing.assert_array_equal(w_plain, np.load(tmp_path / "named" / "weights.npz")["W"])
    slower = snnjax.run("supervised-stdp", {**TINY, **tables, "encoder": {"name": "poisson", "max_rate_hz": 20.0}},
                        seeds=2, out=tmp_path / "slower")
    assert not np.array_equal(w_plain, np.load(tmp_path / "slower" / "weights.npz")["W"])


def test_an_in_process_registrys_neuron_encoder_and_segment_rule_are_the_ones_used(tmp_path):
    """use-it-or-lose-it with a neuron model, an encoder and a target rule registered only in the run's
    registry (given to ``snnjax.run``): each factory is called with its parameters and the run's ``dt_ms``."""
    from plugins import encoders, neurons, rules

    calls: list[tuple[str, dict]] = []

    def leaky_lif(*, dt_ms: float = 0.1, tau_m_ms: float = 100.0, threshold_form: str = "vt-copy"):
        """The thesis' excitatory neuron with another membrane time constant (a test model)."""
        calls.append(("leaky-lif", {"dt_ms": dt_ms, "tau_m_ms": tau_m_ms, "threshold_form": threshold_form}))
        return neurons.conductance_lif(dt_ms=dt_ms, tau_m_ms=tau_m_ms, threshold_form=threshold_form)

    def dim_poisson(*, dt_ms: float = 0.1, max_rate_hz: float = 40.0):
        """A Poisson encoder with a lower top rate (a test encoder)."""
        calls.append(("dim-poisson", {"dt_ms": dt_ms, "max_rate_hz": max_rate_hz}))
        return encoders.poisson(dt_ms=dt_ms, max_rate_hz=max_rate_hz)

    def half_stdp(*, scale: float = 0.5):
        """Trace STDP at a fraction of the amplitudes (a test rule)."""
        calls.append(("half-stdp", {"scale": scale}))
        return rules.stdp(a_pre=5e-4 * scale, a_post=-5.25e-4 * scale)

    mine = types.SimpleNamespace(
        __name__="my_parts",
        snnjax_neuron_models=snnjax.hookimpl(lambda: {"leaky-lif": leaky_lif}),
        snnjax_encoders=snnjax.hookimpl(lambda: {"dim-poisson": dim_poisson}),
        snnjax_learning_rules=snnjax.hookimpl(lambda: {"half-stdp": half_stdp}),
    )
    registry = build_registry([mine])
    config = {"n_train": 6, "train_chunk": 6, "n_test": 3, "test_sets": ["noise", "known"], "dt_ms": 0.5,
              "neuron": {"name": "leaky-lif", "tau_m_ms": 80}, "encoder": "dim-poisson",
              "target_rule": {"name": "half-stdp", "scale": 0.25}}
    done = snnjax.run("use-it-or-lose-it", config, seeds=2, out=tmp_path / "mine", registry=registry)
    assert ("leaky-lif", {"dt_ms": 0.5, "tau_m_ms": 80.0, "threshold_form": "vt-copy"}) in calls
    assert ("dim-poisson", {"dt_ms": 0.5, "max_rate_hz": 40.0}) in calls
    assert ("half-stdp", {"scale": 0.25}) in calls
    assert len(done.metrics["accuracy_with"]) == 2
    # the installed plugins' registry does not know them: the run's registry is the one asked
    with pytest.raises(ConfigError, match="unknown neuron plugin 'leaky-lif'"):
        snnjax.run("use-it-or-lose-it", config, out=tmp_path / "global")


def test_segment_supervised_builds_a_named_rule_from_the_registry_it_is_given():
    """``segment-supervised`` resolves a target/other rule given by name through the run's registry
    (handed to it by ``create_choice``), not the installed plugins' registry."""
    from plugins import rules

    def mirror_stdp():
        return rules.stdp(a_pre=1e-3, a_post=-1e-3)

    mine = types.SimpleNamespace(__name__="mirror", snnjax_learning_rules=snnjax.hookimpl(
        lambda: {"mirror-stdp": mirror_stdp}))
    registry = build_registry([mine])
    from snnjax.plugins import create_choice

    rule = create_choice(registry, "rule", {"name": "segment-supervised", "target": "mirror-stdp"},
                         registry=registry)
    assert callable(rule.update)
    with pytest.raises(Exception, match="mirror-stdp"):
        rules.segment_supervised(target="mirror-stdp")  # the installed plugins do not have it
    with pytest.raises(ConfigError, match="registry must be a plugin registry"):
        rules.segment_supervised(target="mirror-stdp", registry="not a registry")


# ---------------------------------------------------------------------------- conv-mnist and continual by name

CONV_TINY = ["n_train=8", "n_test=4"]


@pytest.mark.parametrize("sets, message", [
    (["inhibition.name=k-wat"], "unknown inhibition plugin 'k-wat'. Did you mean 'k-wta'?"),
    (["inhibition.radious=1"], "inhibition plugin 'k-wta' has no parameter 'radious'. Did you mean 'radius'?"),
    (["layer_rule.a_plsu=1"], "rule plugin 'spyketorch-stdp' has no parameter 'a_plsu'. Did you mean 'a_plus'?"),
    (["decision_rule=r-stpd"], "unknown rule plugin 'r-stpd'. Did you mean 'r-stdp'?"),
    (["decision_rule.adaptive_int=lots"], "config key 'decision_rule.adaptive_int' must be a number, got 'lots'"),
    (["encoder.threshold=high"], "config key 'encoder.threshold' must be a number, got 'high'"),
    (["encoder=poison"], "unknown encoder plugin 'poison'"),
    (["encoder=poisson"], "config key 'encoder': the encoder PoissonEncoder cannot feed the conv network"),
])
@pytest.mark.parametrize("dry_run", [True, False])
def test_conv_mnist_refuses_a_bad_part_in_one_line_before_any_compile(sets, message, dry_run, compiles, tmp_path,
                                                                      capsys):
    argv = ["run", "conv-mnist", "--quiet", "--out", str(tmp_path / "run")]
    for item in [*CONV_TINY, *sets]:
        argv += ["--set", item]
    assert main(argv + (["--dry-run"] if dry_run else [])) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert compiles == []


@pytest.mark.parametrize("sets, message", [
    (["inhibition.k=0"], "k (number of winners) must be a positive integer, got 0"),
    (["layer_rule.lb=2"], "STDP bounds need lb < ub, got [2.0, 1.0]"),
])
@pytest.mark.parametrize("dry_run", [True, False])
def test_conv_mnist_refuses_a_part_its_factory_refuses_before_any_compile(sets, message, dry_run, compiles, tmp_path,
                                                                          capsys):
    argv = ["run", "conv-mnist", "--quiet", "--out", str(tmp_path / "run")]
    for item in [*CONV_TINY, *sets]:
        argv += ["--set", item]
    assert main(argv + (["--dry-run"] if dry_run else [])) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert compiles == []


def test_conv_mnist_parts_from_a_toml_table_and_dotted_sets_resolve_alike(tmp_path, capsys):
    path = tmp_path / "conv.toml"
    path.write_text('n_train = 8\n[inhibition]\nname = "k-wta"\nradius = 1\n[layer_rule]\nname = "spyketorch-stdp"\n'
                    'a_plus = 0.01\n[decision_rule]\nname = "r-stdp"\nlb = 0.1\n[encoder]\nname = "dog-latency"\n'
                    'threshold = 40\n')
    assert main(["run", "conv-mnist", "--config", str(path), "--dry-run"]) == 0
    from_toml = json.loads(capsys.readouterr().out)["config"]
    sets = ["n_train=8", "inhibition.radius=1", "layer_rule.a_plus=0.01", "decision_rule.lb=0.1",
            "encoder.threshold=40"]
    assert main(["run", "conv-mnist", "--dry-run", *[a for s in sets for a in ("--set", s)]]) == 0
    from_sets = json.loads(capsys.readouterr().out)["config"]
    assert from_toml == from_sets
    assert from_toml["inhibition"] == {"name": "k-wta", "radius": 1}  # an int: the factory's default is one
    assert from_toml["encoder"] == {"name": "dog-latency", "threshold": 40.0}
    assert from_toml["decision_rule"] == {"name": "r-stdp", "lb": 0.1}


def test_conv_pipeline_builds_an_in_process_registrys_parts_with_the_config_values():
    """The conv network's encoder, inhibition, layer and decision rules come from the run's registry, their
    factories given the numeric keys (``stdp_a_plus`` → ``a_plus``, ``k1`` → ``k``, ...) they take."""
    from snnjax_plugins.conv import frontend, inhibition, stdp
    from snnjax_plugins.conv import pipeline as P
    from snnjax_plugins.experiments.conv_mnist import DEFAULTS

    calls: list[tuple[str, dict]] = []

    def my_stdp(*, a_plus: float = 1.0, lb: float = 0.0, ub: float = 1.0):
        """SpykeTorch STDP without its schedule (a test rule)."""
        calls.append(("my-stdp", {"a_plus": a_plus}))
        return stdp.spyketorch_stdp(a_plus=a_plus, a_minus=-0.75 * a_plus, schedule_every=None, lb=lb, ub=ub)

    def my_rstdp(*, batch_size: int = 1, adaptive: bool = True, adaptive_int: float = 1.0):
        """R-STDP (a test rule)."""
        calls.append(("my-rstdp", {"batch_size": batch_size, "adaptive": adaptive, "adaptive_int": adaptive_int}))
        return stdp.r_stdp(batch_size=batch_size, adaptive=adaptive, adaptive_int=adaptive_int)

    def first_k(*, k: int = 1, radius: int = 0):
        """k-WTA through the generic path (a test inhibition)."""
        calls.append(("first-k", {"k": k, "radius": radius}))
        return lambda pot, spk: inhibition.k_winners(pot, k, radius, spk)

    def my_dog(*, dog=frontend.MOZAFARI_DOG, padding: int = 6, timesteps: int = 15, threshold: float = 50.0):
        """The DoG front end (a test encoder)."""
        calls.append(("my-dog", {"timesteps": timesteps, "threshold": threshold}))
        return frontend.dog_latency(dog, padding, threshold, 8, timesteps)

    mine = types.SimpleNamespace(
        __name__="my_conv_parts",
        snnjax_learning_rules=snnjax.hookimpl(lambda: {"my-stdp": my_stdp, "my-rstdp": my_rstdp}),
        snnjax_inhibitions=snnjax.hookimpl(lambda: {"first-k": first_k}),
        snnjax_encoders=snnjax.hookimpl(lambda: {"my-dog": my_dog}),
    )
    registry = build_registry([mine])
    cfg = resolve(DEFAULTS, ("toml", {"layer_rule": "my-stdp", "decision_rule": {"name": "my-rstdp", "adaptive_int": 0.5},
                                      "inhibition": "first-k", "encoder": {"name": "my-dog", "threshold": 30},
                                      "stdp_a_plus": 0.01, "k1": 3, "radius1": 1, "k2": 2, "radius2": 0}),
                  registry=registry)
    pipe = P.pipeline_from_config(cfg, 10, n_train=40, registry=registry)
    assert ("my-stdp", {"a_plus": 0.01}) in calls
    assert pipe.stdp_params == {"a_plus": 0.01}  # its factory takes no a_minus, schedule_every, max_a_plus
    assert ("my-rstdp", {"batch_size": 40, "adaptive": True, "adaptive_int": 0.5}) in calls  # rstdp_batch 0 → n_train
    pipe.rstdp_rule(adaptive=False)  # the experiments' per-call overrides reach the chosen factory
    assert ("my-rstdp", {"batch_size": 40, "adaptive": False, "adaptive_int": 0.5}) in calls
    assert ("first-k", {"k": 3, "radius": 1}) in calls and ("first-k", {"k": 2, "radius": 0}) in calls
    assert all(layer.inhibition is not None for layer in pipe.spec.layers)
    assert ("my-dog", {"timesteps": 15, "threshold": 30.0}) in calls
    assert pipe.encoder.threshold == 30.0 and pipe.encoder_tag
    # and the defaults, given through the registry, are the thesis' network exactly
    default = resolve(DEFAULTS, registry=build_registry())
    built = P.pipeline_from_config(default, 10, n_train=40, registry=build_registry())
    plain = P.pipeline_from_config(default, 10, n_train=40)
    assert built.spec == plain.spec and built.stdp_params == plain.stdp_params
    assert built.rstdp_params == plain.rstdp_params and built.encoder is None


def test_a_conv_layers_generic_inhibition_path_equals_the_fused_k_wta():
    """A k-WTA given as a plain callable (the generic path every third-party scheme takes) selects the same
    winners and learns the same update as the built-in fused step."""
    import jax
    import jax.numpy as jnp
    from snnjax_plugins.conv import inhibition, networks as N

    layer = N.mozafari2019().layers[0]
    generic = N.with_inhibitions(N.mozafari2019(), [lambda pot, spk: inhibition.k_winners(pot, 5, 3, spk)] * 2)
    assert generic.layers[0].inhibition is not None
    assert N.with_inhibitions(N.mozafari2019(), [inhibition.k_wta(5, 3), inhibition.k_wta(8, 1)]) == N.mozafari2019()
    lat = jax.random.randint(jax.random.PRNGKey(1), (6, 28, 28), 0, 16).astype(jnp.uint8)
    w = N.init_weight(jax.random.PRNGKey(2), layer)
    fused = N.layer_train_forward(layer, w, lat, 15)
    other = N.layer_train_forward(generic.layers[0], w, lat, 15)
    assert bool(jnp.any(fused.winners.valid))
    for a, b in zip(jax.tree_util.tree_leaves(fused), jax.tree_util.tree_leaves(other)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_global_winner_take_all_potentials_become_conv_winners():
    """An inhibition that returns the potentials with the losers silenced gives the neurons it keeps as
    candidates, in k-WTA order, one per feature, at most k."""
    import jax.numpy as jnp
    from snnjax_plugins.conv.inhibition import winners_of

    pot = jnp.zeros((3, 4, 5, 5)).at[:, 2, 1, 1].set(jnp.array([0.0, 2.0, 3.0])).at[:, 1, 3, 3].set(
        jnp.array([1.0, 1.0, 1.0])).at[:, 0, 0, 0].set(jnp.array([0.0, 0.0, 9.0]))
    kept = pot.at[:, 0].set(0.0)  # the scheme silenced feature 0
    win = winners_of(kept, pot, jnp.sign(pot), 3)
    # feature 1 fires first (step 0), then feature 2 (step 1); feature 0 was silenced
    assert win.index.tolist() == [[1, 3, 3], [2, 1, 1], [-1, -1, -1]]
    assert win.valid.tolist() == [True, True, False]


CONTINUAL_TINY = {"n_train": 20, "n_test": 10, "epochs1": 1, "epochs2": 1, "epochs3": 1, "retrain_features": False,
                  "task2_epochs1": 0, "task2_epochs2": 0, "task2_epochs3": 1, "compare_baseline": True}


def test_continual_runs_an_in_process_registrys_regularizer_as_a_method(tmp_path):
    """Any registered regularizer is a continual method, by name with parameters: chained after R-STDP on the
    decision layer in task 2, its factory given the seed's task-1 weights, a key and R-STDP's bounds."""
    calls: list[dict] = []

    def hold(*, strength: float = 0.5, weights=None, key=None, lb: float = 0.0, ub: float = 1.0):
        """Undo a fraction ``strength`` of every update (a test regularizer)."""
        calls.append({"strength": strength, "weights": None if weights is None else tuple(weights.shape),
                      "key": key is not None, "lb": lb, "ub": ub})

        def update(w, state, activity):
            return activity.w_before + (1.0 - strength) * (w - activity.w_before), state

        from snnjax.plasticity import LearningRule
        return LearningRule(lambda w: (), update)

    mine = types.SimpleNamespace(__name__="my_methods", snnjax_regularizers=snnjax.hookimpl(lambda: {"hold": hold}))
    registry = build_registry([mine])
    done = snnjax.run("continual", {**CONTINUAL_TINY, "method": [{"name": "hold", "strength": 1}]}, seeds=2,
                      out=tmp_path / "hold", registry=registry)
    assert done.config["method"] == [{"name": "hold", "strength": 1.0}]
    assert {"strength": 1.0, "weights": (200, 250, 5, 5), "key": True, "lb": 0.2, "ub": 0.8} in calls
    assert done.results["extra"]["arms"][1]["label"] == "hold"
    m = done.metrics
    # every task-2 update undone, the features frozen: task 1 is kept exactly, whatever the baseline does
    np.testing.assert_array_equal(m["final_task1"], m["task1_after_task1"])
    np.testing.assert_array_equal(m["forgetting"], np.zeros(2))
    np.testing.assert_array_equal(m["task1_after_task1"], m["baseline_task1_after_task1"])
    # the installed plugins' registry does not know it; a built-in takes no parameters
    with pytest.raises(ConfigError, match="unknown method 'hold'"):
        snnjax.run("continual", {**CONTINUAL_TINY, "method": ["hold"]}, out=tmp_path / "global")
    with pytest.raises(ConfigError, match="'baseline' is built in and takes no parameters"):
        snnjax.run("continual", {**CONTINUAL_TINY, "method": [{"name": "baseline", "x": 1}]}, out=tmp_path / "b",
                   registry=registry)


def test_the_inhibitory_neuron_is_chosen_by_name_with_parameters(capsys):
    """``inh_neuron``: the default by name builds the model the network used before (the golden runs pin
    it), a parameter reaches the model the network gets, and an unknown parameter is a one-line error
    before anything compiles."""
    from snnjax.config import resolve
    from snnjax.plugins import get_registry

    from snnjax_plugins.experiments import supervised_stdp as sx
    from snnjax_plugins.experiments import use_it_or_lose_it as ux
    from snnjax_plugins.neurons import DC15_INH, dc15_inhibitory_lif, inhibitory_lif

    reg = get_registry()
    assert dc15_inhibitory_lif(dt_ms=0.5) == inhibitory_lif(**{**DC15_INH, "dt_ms": 0.5})  # diehl-cook's default
    cfg = resolve(sx.DEFAULTS, ("test", TINY), registry=reg)
    assert sx.build_model(cfg, reg)[0].inh == inhibitory_lif(dt_ms=0.1)
    cfg = resolve(sx.DEFAULTS, ("test", {**TINY, "inh_neuron.v_th_mv": -45.0}), registry=reg)
    assert sx.build_model(cfg, reg)[0].inh == inhibitory_lif(dt_ms=0.1, v_th_mv=-45.0)
    ucfg = resolve(ux.DEFAULTS, ("test", {"inh_neuron": {"name": "inhibitory-lif", "tau_m_ms": 12.0}}), registry=reg)
    assert ux.build_model(ucfg, reg)[0].inh == inhibitory_lif(dt_ms=0.1, tau_m_ms=12.0)
    capsys.readouterr()
    assert main(["run", "diehl-cook", "--set", "inh_neuron.v_thr_mv=-40", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "v_th_mv" in err, err


def test_a_key_checks_what_it_needs_of_the_plugin_it_is_given():
    """``plugin_key(kind, name, check)``: the chosen plugin is built and checked while the config resolves."""
    seen = []

    def needs_pairing(rule):
        seen.append(rule)
        if not hasattr(rule, "fast"):
            raise ConfigError("this experiment needs a rule with a fast path")

    defaults = {"rule": plugin_key("rule", "stdp", needs_pairing)}
    assert resolve(defaults, ("--set", {"rule.a_pre": "1e-3"}), registry=get_registry())["rule"]["a_pre"] == 1e-3
    assert len(seen) == 1  # built once, with the given parameter
    seen.clear()
    assert resolve(defaults, registry=get_registry())["rule"] == "stdp"  # a plain name is checked too
    assert len(seen) == 1


def test_a_neuron_model_that_does_not_declare_its_state_is_checked_by_its_shape(tmp_path, capsys):
    """A third-party current-based model without a return annotation on ``init`` is refused in one line too."""
    from plugins import neurons

    class Undeclared:
        def __init__(self, dt_ms):
            self._m = neurons.lif(dt_ms=dt_ms)
            self.dt_ms = dt_ms

        def init(self, n, dtype=None):  # no return annotation
            return self._m.init(n, dtype)

        def __getattr__(self, name):
            return getattr(self._m, name)

    def plain_lif(*, dt_ms: float = 0.1):
        """A current-based LIF that does not declare its state type (a test model)."""
        return Undeclared(dt_ms)

    mine = types.SimpleNamespace(__name__="my_model",
                                 snnjax_neuron_models=snnjax.hookimpl(lambda: {"plain-lif": plain_lif}))
    argv = ["run", "diehl-cook", "--quiet", "--dry-run", "--set", "neuron=plain-lif"]
    assert main(argv, registry=build_registry([mine])) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "config key 'neuron': the excitatory neuron model Undeclared cannot run" in err
