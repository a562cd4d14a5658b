"""The core run loop (:mod:`snnjax.loop`): batched programs, streams, phases with checkpoint and resume."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnjax.checkpoint import Checkpointer
from snnjax.experiment import RunContext
from snnjax.loop import RunLoop


def _ctx(tmp_path, n_seeds=3, checkpoint=None, progress=None):
    return RunContext(config={"seed": 0}, n_seeds=n_seeds, out_dir=tmp_path, registry=None,
                      checkpoint=checkpoint, **({"progress": progress} if progress else {}))


def test_ctx_makes_one_loop(tmp_path):
    ctx = _ctx(tmp_path)
    assert isinstance(ctx.loop, RunLoop) and ctx.loop is ctx.loop


def test_batched_equals_vmap_with_shared_args(tmp_path):
    loop = _ctx(tmp_path).loop

    def per_seed(w, x, scale):
        return jnp.tanh(w @ x) * scale, jnp.sum(w)

    w = jnp.arange(3 * 4 * 5, dtype=jnp.float32).reshape(3, 4, 5) / 50.0
    x = jnp.linspace(-1.0, 1.0, 5)
    got = loop.batched(per_seed, shared=(1, 2))(w, x, 2.0)
    want = jax.vmap(per_seed, in_axes=(0, None, None))(w, x, 2.0)
    for g, e in zip(got, want, strict=True):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(e))


def test_compiles_once_per_signature_and_counts_compile_time(tmp_path):
    loop = _ctx(tmp_path).loop
    prog = loop.batched(lambda a: a * 2.0, name="double")
    a = jnp.ones((3, 4))
    prog(a)
    prog(a + 1.0)
    assert loop.timing["compiles"] == {"double": 1}
    prog(jnp.ones((3, 5)))  # a new shape: one more compile
    assert loop.timing["compiles"] == {"double": 2}
    assert loop.timing["compile_s"] > 0.0


def test_streams_are_fold_in_and_split_per_seed(tmp_path):
    ctx = _ctx(tmp_path)
    keys = ctx.seed_keys()
    folded = ctx.loop.fold(keys, 7, 3)
    for s in range(3):
        want = jax.random.fold_in(jax.random.fold_in(keys[s], 7), 3)
        np.testing.assert_array_equal(np.asarray(folded[s]), np.asarray(want))
    a, b = ctx.loop.split(keys, 2)
    old = jax.vmap(lambda k: jax.random.split(k, 2))(keys).transpose(1, 0, 2)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(old[0]))
    np.testing.assert_array_equal(np.asarray(b), np.asarray(old[1]))


def _accumulate(loop, calls):
    prog = loop.batched(lambda acc, k: acc + jax.random.uniform(k, acc.shape), name="step")
    keys = jax.random.split(jax.random.PRNGKey(1), loop.n_seeds)

    def body(c, carry):
        calls.append(c)
        return prog(carry, loop.fold(keys, c))

    return body


def test_phase_runs_chunks_reports_progress_and_times(tmp_path):
    seen = []
    ctx = _ctx(tmp_path, progress=lambda done, total, what="": seen.append((done, total, what)))
    calls: list[int] = []
    out = ctx.loop.phase("train", 4, _accumulate(ctx.loop, calls), jnp.zeros((3, 2)), unit="images",
                         report=lambda done: (done * 10, 40))
    assert calls == [0, 1, 2, 3]
    assert seen == [(10, 40, "images"), (20, 40, "images"), (30, 40, "images"), (40, 40, "images")]
    entry = ctx.loop.timing["phases"]["train"]
    assert entry["chunks_run"] == 4
    assert [row["chunk"] for row in entry["log"]] == [0, 1, 2, 3]
    assert entry["wall_s"] >= sum(row["wall_s"] for row in entry["log"]) - 1e-3
    assert out.shape == (3, 2)


class _Stop(Exception):
    pass


def _checkpointed(out, resume):
    """A 3-seed run context checkpointing every chunk into ``out``; its loop; the chunks it runs; a body."""
    config = {"seed": 0}
    ckpt = Checkpointer(out, every=1, experiment="loop-test", config=config, n_seeds=3, resume=resume)
    ctx = RunContext(config=config, n_seeds=3, out_dir=out, registry=None, checkpoint=ckpt)
    calls: list[int] = []
    return ctx.loop, calls, _accumulate(ctx.loop, calls)


def test_resumed_phases_equal_an_uninterrupted_run(tmp_path):
    def run(out, stop_at=None, resume=False):
        loop, calls, body = _checkpointed(out, resume)

        def stopping(c, carry):
            if c == stop_at:
                raise _Stop
            return body(c, carry)

        first = loop.phase("first", 3, lambda c, carry: body(c, carry), jnp.zeros((3, 2)))
        second = loop.phase("second", 5, stopping, first * 2.0)
        return np.asarray(second), calls

    whole, _ = run(tmp_path / "a")
    with pytest.raises(_Stop):
        run(tmp_path / "b", stop_at=3)
    resumed, calls = run(tmp_path / "b", resume=True)
    # the finished phase is restored without running; the second goes on from its chunk 3
    assert calls == [3, 4]
    np.testing.assert_array_equal(resumed, whole)


def test_a_phase_that_keeps_part_of_its_carry_checkpoints_only_that_part(tmp_path):
    """``phase(..., keep=...)``: once the phase ends the checkpoint holds ``keep(carry)``, not the
    carry; a resumed run gets it back without running the phase, and ends as an uninterrupted one."""
    def run(out, stop=False, resume=False):
        loop, calls, body = _checkpointed(out, resume)
        big = jnp.zeros((3, 1000))  # a state the run no longer needs once the phase is done

        def step(c, carry):
            total, state, acc = carry
            total = body(c, total)
            acc = np.array(acc)
            acc[:, c] = np.asarray(total[:, 0], np.float64)
            return total, state + 1.0, acc

        total, acc = loop.phase("first", 3, step, (jnp.zeros((3, 2)), big, np.zeros((3, 3))),
                                keep=lambda c: (c[0], c[2]))
        if stop:
            raise _Stop
        second = loop.phase("second", 2, lambda c, carry: body(c, carry), total * 2.0)
        return np.asarray(second), acc, calls

    whole, acc_whole, _ = run(tmp_path / "a")
    with pytest.raises(_Stop):
        run(tmp_path / "b", stop=True)
    stored = np.load(tmp_path / "b" / "checkpoint.npz")
    sizes = [stored[k].size for k in stored.files if k.startswith("leaf")]
    assert sizes and 0 < sum(sizes) < 1000  # the (3, 1000) state is gone, the kept part is there
    resumed, acc, calls = run(tmp_path / "b", resume=True)
    assert calls == [0, 1]  # only the second phase ran
    assert isinstance(acc, np.ndarray) and acc.dtype == np.float64  # a NumPy leaf stays NumPy (float64)
    np.testing.assert_array_equal(acc, acc_whole)
    np.testing.assert_array_equal(resumed, whole)


def test_a_local_loop_runs_programs_and_phases_outside_a_run():
    """``RunLoop.local()`` (scripts, tests, benchmarks): batched programs as in a run, phases in memory."""
    loop = RunLoop.local()
    w = jnp.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(np.asarray(loop.batched(lambda a, b: a * b, shared=(1,))(w, 2.0)), np.asarray(w) * 2)
    calls: list[int] = []
    out = loop.phase("p", 2, lambda c, carry: (calls.append(c), carry + 1.0)[1], jnp.zeros(3))
    assert calls == [0, 1]
    np.testing.assert_array_equal(np.asarray(out), [2.0, 2.0, 2.0])
    typed = jax.random.split(jax.random.key(0), 3)  # typed key arrays (no weak type) as per-seed arguments
    np.testing.assert_array_equal(np.asarray(loop.batched(jax.random.uniform)(typed)),
                                  np.asarray(jax.vmap(jax.random.uniform)(typed)))
