"""snnjax.xla_options: the CPU settings the core compiles and runs with, and that they change no result."""

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
from snnjax_plugins.network.step import write_rows
from snnjax_plugins.rules import stdp_dc15

verified = pytest.mark.skipif(not xo._jaxlib_verified() or xo._accelerator_plugin() is not None,
                              reason="the settings apply to verified jaxlib releases on CPU-only installs")


@verified
def test_the_flags_are_added_once_and_a_users_choice_is_kept():
    env = {}
    assert xo.use_cpu_loop_flags(env) == []
    assert env["XLA_FLAGS"].split() == list(xo.CPU_LOOP_FLAGS)
    assert xo.use_cpu_loop_flags(env) == [] and env["XLA_FLAGS"].split() == list(xo.CPU_LOOP_FLAGS)
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    xo.use_cpu_loop_flags(env)
    assert env["XLA_FLAGS"].split() == ["--xla_force_host_platform_device_count=2", *xo.CPU_LOOP_FLAGS]
    mine = "--xla_cpu_enable_concurrency_optimized_scheduler=true"
    env = {"XLA_FLAGS": mine}
    why = xo.use_cpu_loop_flags(env)
    assert env["XLA_FLAGS"].split() == [mine, xo.CPU_LOOP_FLAGS[1]]
    assert why == ["XLA_FLAGS already sets xla_cpu_enable_concurrency_optimized_scheduler"]


def test_an_unverified_jaxlib_or_an_accelerator_plugin_gets_xla_defaults(monkeypatch):
    monkeypatch.setattr(xo, "VERIFIED_JAXLIB", ())
    env = {}
    assert "not one the CPU loop flags were measured with" in xo.use_cpu_loop_flags(env)[0]
    assert env == {} and xo.compiler_options("cpu") == {}
    monkeypatch.undo()
    monkeypatch.setattr(xo, "ACCELERATOR_PLUGINS", ("json",))  # any importable module stands for a plugin
    if xo._jaxlib_verified():
        assert "accelerator plugin (json)" in xo.use_cpu_loop_flags(env)[0]
        assert env == {}


@verified
def test_compile_options_on_cpu_only():
    assert xo.compiler_options("cpu") == {"xla_cpu_copy_insertion_use_region_analysis": True}
    assert xo.compiler_options("cpu", library_reductions=False) == {
        "xla_cpu_copy_insertion_use_region_analysis": True,
        "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}
    assert xo.compiler_options("gpu") == {} and xo.compiler_options("tpu") == {}
    assert xo.compiler_options("gpu", library_reductions=False) == {}


@verified
def test_conv_inference_and_decision_programs_reduce_inline_with_the_same_bits(monkeypatch):
    """The conv pipeline compiles inference and the decision layer's epochs with ``library_reductions=False``:
    no reduction is left to a library call, and every output equals the library's (they reduce spike
    counts and maxima only)."""
    import re

    from snnjax import data
    from snnjax.loop import RunLoop
    from snnjax_plugins.conv import pipeline as P

    ds = data.load("mnist-embedded", "train", limit=8)
    images, labels = np.asarray(ds.images), np.asarray(ds.labels)
    keys = jax.random.split(jax.random.key(0), 2)
    batched = RunLoop.batched

    def outputs(library: bool):
        if library:
            monkeypatch.setattr(RunLoop, "batched", lambda self, fn, **kw: batched(self, fn, **{
                **kw, "library_reductions": True}))
        pipe = P.pipeline_from_config(dict(P.NETWORK_DEFAULTS), 10, 8)
        st = pipe.init(keys)
        lat1 = pipe.propagate(0, st.w1, pipe.encode(images))
        lat2 = pipe.propagate(1, st.w2, lat1)
        w3, st3, stats = pipe.decision_epoch(P.epoch_keys(keys, 3, 0), st.w3, st.st3, lat2, labels)
        # the first epoch clamped every kernel into R-STDP's bounds: the second runs the row-local program
        w3, _, _ = pipe.decision_epoch(P.epoch_keys(keys, 3, 1), w3, st3, lat2, labels)
        monkeypatch.setattr(RunLoop, "batched", batched)
        texts = {name: exe.as_text() for (name, _), prog in pipe._programs.items() for exe in prog._compiled.values()}
        library_reduce = {n: len(re.findall(r"%ynn_fusion[^\n]*op_name=\"[^\"]*reduce_(?:max|sum)\"", t))
                          for n, t in texts.items() if n != "init"}
        return [np.asarray(x) for x in (lat1, lat2, w3, pipe.decisions(w3, lat2))], library_reduce

    inline, none_left = outputs(False)
    library, some = outputs(True)
    assert set(none_left) == {"propagate1", "propagate2", "decision", "decision-holds", "decision-rows"}
    assert not any(none_left.values())
    assert some["decision"] > 0
    for a, b in zip(inline, library, strict=True):
        np.testing.assert_array_equal(a, b)


def test_after_jax_started_it_says_so_and_changes_nothing(monkeypatch):
    jnp.zeros(1).block_until_ready()  # the backends have started
    monkeypatch.setenv("XLA_FLAGS", "")
    why = xo.use_cpu_loop_flags()
    if xo._jaxlib_verified() and xo._accelerator_plugin() is None:
        assert "backends have started" in why[0]
    assert os.environ["XLA_FLAGS"] == ""


@verified
def test_the_snnjax_command_runs_with_the_flags():
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    code = "import os, sys; from snnjax.cli import main; main(['data']); print(os.environ['XLA_FLAGS'], file=sys.stderr)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stderr.splitlines()[-1].split() == list(xo.CPU_LOOP_FLAGS)


def test_write_rows_equals_a_scatter_alone_and_under_vmap():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(9, 3)), jnp.float32)
    idx = jnp.asarray([4, 0, 8, 8, 8], jnp.int32)  # the padded entries (8: a spare row) repeat
    vals = jnp.asarray(rng.normal(size=(5, 3)), jnp.float32)
    got = write_rows(x, idx, vals)
    np.testing.assert_array_equal(got[:8], x.at[idx].set(vals)[:8])
    xs = jnp.stack([x, 2 * x])
    idxs = jnp.stack([idx, jnp.asarray([1, 2, 3, 8, 8], jnp.int32)])
    batched = jax.vmap(write_rows)(xs, idxs, jnp.stack([vals, -vals]))
    for s, v in enumerate((vals, -vals)):
        np.testing.assert_array_equal(batched[s][:8], xs[s].at[idxs[s]].set(v)[:8])
    shared = jax.vmap(write_rows, in_axes=(None, 0, None))(x, idxs, vals)  # unbatched operands broadcast
    np.testing.assert_array_equal(shared[1][:8], x.at[idxs[1]].set(vals)[:8])
    hlo = jax.jit(write_rows).lower(x, idx, vals).as_text()
    assert "scatter" not in hlo and "dynamic_update_slice" in hlo
    assert "scatter" in jax.jit(jax.vmap(write_rows)).lower(xs, idxs, jnp.stack([vals, -vals])).as_text()


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


def test_first_true_and_add_per_column_equal_nonzero_and_a_scatter_add():
    from snnjax_plugins.network.step import add_per_column, first_true

    rng = np.random.default_rng(1)
    for n, k in [(30, 8), (5, 8), (10, 3)]:
        for _ in range(20):
            m = jnp.asarray(rng.random(n) < rng.random())
            np.testing.assert_array_equal(first_true(m, k), jnp.nonzero(m, size=k, fill_value=n)[0])
    buf = jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)
    rows = jnp.asarray(rng.integers(0, 6, (3, 4)), jnp.int32)  # repeats: two spikes landing in one slot
    cols = jnp.broadcast_to(jnp.arange(4)[None], rows.shape)
    w = jnp.float32(0.3)
    np.testing.assert_array_equal(add_per_column(buf, rows, w), buf.at[rows, cols].add(w))
    both = jax.vmap(add_per_column, in_axes=(0, 0, None))(jnp.stack([buf, -buf]), jnp.stack([rows, rows[::-1]]), w)
    np.testing.assert_array_equal(both[1], (-buf).at[rows[::-1], cols].add(w))


@verified
@pytest.mark.parametrize("network", ["dc15", "thesis"])
def test_one_seeds_time_steps_are_compiled_as_whole_loops(network):
    """With the flags (set by conftest.py) XLA compiles the step loops of one seed as one function each:
    they hold no scatter (a scatter in a step would bring back a kernel dispatch per operation)."""
    if network == "dc15":
        cfg, rule, gates = net.dc15_config(20, min_spikes=0), stdp_dc15(), None
    else:
        from snnjax_plugins.rules import segment_supervised

        cfg, rule, gates = net.thesis_config(n_exc=30), segment_supervised(n_classes=3), jnp.ones((1, 30))
    images = jnp.full((1, 784), 128.0)

    def train(st, key):
        return net.present_many(st, images, key, cfg, rule, gates=gates)[1].exc_counts

    st = net.init_network(jax.random.key(0), cfg, rule)
    text = jax.jit(train).lower(st, jax.random.key(1)).compile(compiler_options=xo.compiler_options("cpu")).as_text()
    # the sampler's loops (4) and the input and rest phases' block and step loops (4)
    assert text.count('xla_cpu_small_call="true"') >= 8
