"""``x64 = true`` is a run-level option: the core runs the experiment under float64 and puts
the process-wide JAX setting back afterwards, so the next run in the process is unaffected."""

from __future__ import annotations

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import snnjax
from snnjax import hookimpl
from snnjax.experiment import Experiment
from snnjax.experiment import RunResult as ExperimentResult
from snnjax.plugins import build_registry


def _dtype_run(ctx):
    """Report, per seed, whether a freshly traced sum came out in float64 (1) or float32 (0)."""
    total = jax.jit(lambda x: jnp.sum(x))(jnp.arange(3.0))
    is64 = float(total.dtype == jnp.float64)
    return ExperimentResult(metrics={"float64": np.full(ctx.n_seeds, is64)})


PRECISION = types.SimpleNamespace(__name__="precision_test_plugins", snnjax_experiments=hookimpl(
    lambda: {"dtype-probe": lambda: Experiment("dtype-probe", "which float a run traces in (test)",
                                               {"seed": 0, "x64": False}, _dtype_run),
             "dtype-probe-no-key": lambda: Experiment("dtype-probe-no-key", "no x64 key (test)",
                                                      {"seed": 0}, _dtype_run)}))


@pytest.fixture
def registry():
    return build_registry([PRECISION], use_entry_points=False)


def test_x64_runs_the_body_in_float64_and_restores_the_process_setting(registry):
    assert not jax.config.jax_enable_x64
    wide = snnjax.run("dtype-probe", {"x64": True}, registry=registry)
    assert wide.metrics["float64"].tolist() == [1.0]
    assert not jax.config.jax_enable_x64 and jnp.zeros(1).dtype == jnp.float32
    narrow = snnjax.run("dtype-probe", {"x64": False}, registry=registry)  # the second run is not affected
    assert narrow.metrics["float64"].tolist() == [0.0]
    assert not jax.config.jax_enable_x64


def test_x64_false_is_float32_even_in_a_float64_process(registry):
    with jax.enable_x64(True):
        assert snnjax.run("dtype-probe", {"x64": False}, registry=registry).metrics["float64"].tolist() == [0.0]
        assert jax.config.jax_enable_x64  # the caller's own setting is back after the run
        # an experiment without the key leaves the caller's setting as it is
        assert snnjax.run("dtype-probe-no-key", registry=registry).metrics["float64"].tolist() == [1.0]


def test_the_setting_is_restored_when_the_run_fails(registry):
    with pytest.raises(snnjax.ConfigError):
        snnjax.run("dtype-probe", {"x64": True, "no_such_key": 1}, registry=registry)
    failing = types.SimpleNamespace(__name__="precision_failing", snnjax_experiments=hookimpl(
        lambda: {"boom": lambda: Experiment("boom", "fails inside (test)", {"seed": 0, "x64": False},
                                            lambda ctx: 1 / 0)}))
    with pytest.raises(ZeroDivisionError):
        snnjax.run("boom", {"x64": True}, registry=build_registry([failing], use_entry_points=False))
    assert not jax.config.jax_enable_x64


def test_no_experiment_flips_the_process_setting():
    from pathlib import Path

    plugins = Path(__file__).resolve().parent.parent / "plugins"
    flips = [str(p.relative_to(plugins)) for p in plugins.rglob("*.py") if "jax_enable_x64" in p.read_text()]
    assert flips == []


def test_a_real_experiment_with_x64_leaves_the_next_run_in_float32(registry):
    tiny = {"n_rounds": 1, "images_per_round": 3, "n_test": 3, "n_exc": 9}
    snnjax.run("supervised-stdp", {**tiny, "x64": True})
    assert not jax.config.jax_enable_x64
    assert snnjax.run("dtype-probe", registry=registry).metrics["float64"].tolist() == [0.0]
