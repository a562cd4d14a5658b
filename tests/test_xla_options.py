"""snnjax.xla_options: the CPU settings the core compiles and schedules with, and that they change no result."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnjax import xla_options as xo
from snnjax_plugins import network as net
from snnjax_plugins.rules import stdp_dc15

verified = pytest.mark.skipif(not xo._jaxlib_verified(), reason="the settings apply to verified jaxlib releases only")


@verified
def test_the_flag_is_added_once_and_a_users_choice_is_kept():
    env = {}
    assert xo.use_sequential_cpu_schedule(env) is None
    assert env["XLA_FLAGS"] == xo.SEQUENTIAL_SCHEDULE_FLAG
    assert xo.use_sequential_cpu_schedule(env) is None and env["XLA_FLAGS"] == xo.SEQUENTIAL_SCHEDULE_FLAG
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    xo.use_sequential_cpu_schedule(env)
    assert env["XLA_FLAGS"].split() == ["--xla_force_host_platform_device_count=2", xo.SEQUENTIAL_SCHEDULE_FLAG]
    mine = "--xla_cpu_enable_concurrency_optimized_scheduler=true"
    env = {"XLA_FLAGS": mine}
    why = xo.use_sequential_cpu_schedule(env)
    assert env["XLA_FLAGS"] == mine and "already sets xla_cpu_enable_concurrency_optimized_scheduler" in why


def test_an_unverified_jaxlib_gets_xla_defaults(monkeypatch):
    monkeypatch.setattr(xo, "VERIFIED_JAXLIB", ())
    env = {}
    assert "not one the sequential schedule was measured with" in xo.use_sequential_cpu_schedule(env)
    assert env == {} and xo.compiler_options("cpu") == {}


@verified
def test_compile_options_on_cpu_only():
    assert xo.compiler_options("cpu") == {"xla_cpu_copy_insertion_use_region_analysis": True}
    assert xo.compiler_options("gpu") == {} and xo.compiler_options("tpu") == {}


def test_after_jax_started_it_says_so_and_changes_nothing(monkeypatch):
    jnp.zeros(1).block_until_ready()  # the backends have started
    monkeypatch.setenv("XLA_FLAGS", "")
    why = xo.use_sequential_cpu_schedule()
    if xo._jaxlib_verified():
        assert "backends have started" in why
    assert os.environ["XLA_FLAGS"] == ""


@verified
def test_the_snnjax_command_runs_with_the_sequential_schedule():
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    code = "import os, sys; from snnjax.cli import main; main(['data']); print(os.environ['XLA_FLAGS'], file=sys.stderr)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert xo.SEQUENTIAL_SCHEDULE_FLAG in out.stderr.splitlines()[-1]


@verified
def test_the_compile_options_change_no_result():
    """A Diehl & Cook training presentation compiled with and without the options: the same bits."""
    cfg = net.dc15_config(20, min_spikes=0)
    rule = stdp_dc15()
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.integers(0, 256, (2, 784)), jnp.float32)

    def train(st, key):
        st, out = net.present_many(st, images, key, cfg, rule)
        return st.w, st.exc.theta, out.exc_counts

    st = net.init_network(jax.random.key(0), cfg, rule)
    lowered = jax.jit(train).lower(st, jax.random.key(1))
    a = lowered.compile()(st, jax.random.key(1))
    b = lowered.compile(compiler_options=xo.compiler_options("cpu"))(st, jax.random.key(1))
    assert int(a[2].sum()) > 0
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
