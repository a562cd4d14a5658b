"""The plugin registry: discovery, collisions, unknown names, import failures."""

from __future__ import annotations

import types

import pytest

from snnjax import hookimpl
from snnjax.errors import PluginError
from snnjax.plugins import build_registry


def _module(name: str, **hooks) -> types.ModuleType:
    mod = types.ModuleType(name)
    for hook_name, table in hooks.items():
        def impl(table=table):
            return table
        impl.__name__ = hook_name
        setattr(mod, hook_name, hookimpl(impl))
    return mod


def my_rule(rate: float = 1.0):
    """A test rule that does nothing."""
    return ("rule", rate)


def test_builtins_are_loaded_through_entry_points():
    reg = build_registry()
    assert "stdp" in reg.names("rule")
    assert "all-ltd" in reg.names("rule")
    assert "poisson" in reg.names("encoder")
    assert "mnist-embedded" in reg.names("dataset")
    info = reg.info("rule", "stdp")
    assert info.distribution == "snnjax"
    assert info.doc


def test_local_plugin_registers_and_creates():
    reg = build_registry([_module("mine", snnjax_learning_rules={"my-rule": my_rule})], use_entry_points=False)
    assert reg.names("rule") == ["my-rule"]
    assert reg.create("rule", "my-rule", rate=2.0) == ("rule", 2.0)
    assert reg.info("rule", "my-rule").doc == "A test rule that does nothing."


def test_unknown_name_lists_available_and_suggests():
    reg = build_registry([_module("mine", snnjax_learning_rules={"my-rule": my_rule})], use_entry_points=False)
    with pytest.raises(PluginError, match=r"Did you mean 'my-rule'.*Available rule plugins: my-rule"):
        reg.get("rule", "my-rul")


def test_unknown_parameter_is_reported():
    reg = build_registry([_module("mine", snnjax_learning_rules={"my-rule": my_rule})], use_entry_points=False)
    with pytest.raises(PluginError, match="has no parameter 'rat'.*Did you mean 'rate'"):
        reg.create("rule", "my-rule", rat=1.0)


def test_name_collision_is_an_error():
    a = _module("a", snnjax_learning_rules={"same": my_rule})
    b = _module("b", snnjax_learning_rules={"same": my_rule})
    with pytest.raises(PluginError, match="collision.*'same'"):
        build_registry([a, b], use_entry_points=False)


def test_hook_returning_non_dict_is_an_error():
    with pytest.raises(PluginError, match="must return a dict"):
        build_registry([_module("bad", snnjax_learning_rules=[my_rule])], use_entry_points=False)


def test_plugin_that_raises_is_reported():
    mod = types.ModuleType("raiser")

    @hookimpl
    def snnjax_learning_rules():
        raise RuntimeError("boom")

    mod.snnjax_learning_rules = snnjax_learning_rules
    with pytest.raises(PluginError, match="raiser.*boom"):
        build_registry([mod], use_entry_points=False)


def test_env_var_restricts_entry_points(monkeypatch):
    monkeypatch.setenv("SNNJAX_PLUGINS", "rules")
    reg = build_registry()
    assert "stdp" in reg.names("rule")
    assert reg.names("dataset") == []


def test_failing_entry_point_import_is_reported(monkeypatch):
    import snnjax.plugins as plugins_mod

    class FakeDist:
        name = "broken-dist"

    class FakeEP:
        name = "broken"
        value = "does_not_exist.module"
        dist = FakeDist()

        def load(self):
            raise ImportError("No module named 'does_not_exist'")

    monkeypatch.setattr(plugins_mod, "entry_points", lambda group: [FakeEP()])
    with pytest.raises(PluginError, match="'broken'.*broken-dist.*failed to import"):
        plugins_mod.build_registry()


def test_every_hook_is_documented():
    from snnjax import hookspecs

    for hook_name in hookspecs.KINDS.values():
        assert getattr(hookspecs, hook_name).__doc__, hook_name


def test_every_hookspec_reference_exists():
    """Each ``:class:``/``:mod:``/``:func:`` a hookspec's docstring names is importable (the protocols exist)."""
    import importlib
    import re

    from snnjax import hookspecs

    refs = set()
    for hook_name in hookspecs.KINDS.values():
        refs |= set(re.findall(r":(?:class|mod|func):`~?(snnjax[\w.]*)`", getattr(hookspecs, hook_name).__doc__))
    assert {"snnjax.neurons.NeuronModel", "snnjax.encoding.Encoder", "snnjax.inhibition.Inhibition"} <= refs
    for ref in sorted(refs):
        try:
            importlib.import_module(ref)
            continue
        except ImportError:
            pass
        module, _, name = ref.rpartition(".")
        assert hasattr(importlib.import_module(module), name), ref


def test_builtin_plugins_satisfy_their_kind_protocol():
    """Every built-in neuron model, encoder, inhibition, rule and regularizer (default parameters) has its protocol."""
    from snnjax.encoding import Encoder
    from snnjax.inhibition import Inhibition
    from snnjax.neurons import NeuronModel, ScheduledNeuronModel
    from snnjax.plasticity import LearningRule

    reg = build_registry()
    protocols = {"neuron": ScheduledNeuronModel, "encoder": Encoder, "inhibition": Inhibition, "rule": LearningRule,
                 "regularizer": LearningRule}
    for kind, proto in protocols.items():
        built = 0
        for name in reg.names(kind):
            try:
                made = reg.create(kind, name)
            except PluginError as exc:  # a factory with required parameters (e.g. a mask built from weights)
                assert "missing" in str(exc) and "required" in str(exc), exc
                continue
            assert isinstance(made, proto), (kind, name, type(made))
            built += 1
        assert built, f"no built-in {kind} builds with its defaults"
    assert not isinstance(object(), NeuronModel) and not isinstance(object(), Encoder)
