"""Row-local learning rules: a declared form that updates only the rows a step touches, bit for bit.

R-STDP changes only the winner's kernel of the decision layer; its :class:`~snnjax.plasticity.RowLocal`
form, and those of the bounds and masks chained after it, let the engine read and write one kernel per
image instead of all of them. These tests pin that the form gives the same bits as ``update``, that the
engine falls back on ``update`` whenever the form's conditions fail (at the start or mid-epoch), and
that a chain declares a form only when all its parts do.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnjax.errors import ConfigError
from snnjax.plasticity import (LearningRule, RowLocal, chain, clip, clip_per_weight, freeze, row_local_holds,
                               row_local_step, unchanged_bits)
from snnjax_plugins import continual_transforms as methods
from snnjax_plugins.conv import networks as N
from snnjax_plugins.conv import pipeline as P
from snnjax_plugins.conv import stdp as S

N_FEAT, N_IMAGES, SEEDS = 8, 24, 2


def _pipeline():
    spec = N.NetworkSpec(
        "tiny", ((3, 1.0, 2.0), (3, 2.0, 1.0)), 1, 4,
        (N.ConvLayerSpec(2, 4, 3, 2.0, 2, 1, pad_in=1, pool=(2, 2, 0)),
         N.ConvLayerSpec(4, 6, 2, 1.0, 2, 0, pad_in=0, pool=(2, 2, 1))),
        N.ConvLayerSpec(6, N_FEAT, 2, None, 1, 0, pad_in=1), n_classes=2,
    )
    # large rates, so that a few images move many weights to the bounds
    return P.ConvPipeline(spec, 2, dict(schedule_every=3),
                          dict(batch_size=8, reward=(0.2, -0.15), punish=(-0.2, 0.1), adaptive=False))


def _decision_data(seed=0):
    rng = np.random.default_rng(seed)
    lat = rng.integers(0, 4, (N_IMAGES, 6, 3, 3)).astype(np.uint8)
    lat = np.where(rng.random(lat.shape) < 0.5, 4, lat).astype(np.uint8)  # 4 = no spike
    return lat, rng.integers(0, 2, N_IMAGES).astype(np.int32)


def _raw_weights(seed=1):
    """Initial-style weights N(0.8, 0.05): about half lie above R-STDP's upper bound 0.8."""
    return 0.8 + 0.05 * jax.random.normal(jax.random.PRNGKey(seed), (SEEDS, N_FEAT, 6, 2, 2))


def _bits(tree):
    return [np.asarray(x).view(np.uint32) if np.asarray(x).dtype == np.float32 else np.asarray(x)
            for x in jax.tree.leaves(tree)]


def _epochs(pipe, w, st, *, row_local, epochs=3, **kw):
    lat, y = _decision_data()
    keys = jax.random.split(jax.random.PRNGKey(2), SEEDS)
    for e in range(epochs):
        w, st, stats = pipe.decision_epoch(P.epoch_keys(keys, 3, e), w, st, lat, y, row_local=row_local, **kw)
    return w, st, stats


def _assert_same(a, b):
    for x, y in zip(_bits(a), _bits(b), strict=True):
        np.testing.assert_array_equal(x, y)


def _compiled(pipe, name):
    return pipe.loop.timing["compiles"].get(f"conv/{name}", 0)


@pytest.mark.parametrize("transform", ["none", "clip_per_weight", "freeze", "clip"])
def test_decision_epochs_through_the_row_local_form_equal_update_bit_for_bit(transform):
    pipe = _pipeline()
    rule = pipe.rstdp_rule()
    w0 = jnp.clip(_raw_weights(), 0.2, 0.8)  # within R-STDP's bounds: the form holds from the start
    st = jax.vmap(rule.init)(w0)
    kw = {}
    if transform == "clip_per_weight":
        low, high = jnp.clip(w0 - 0.03, 0.2, 0.8), jnp.clip(w0 + 0.03, 0.2, 0.8)
        kw = dict(make_rule=lambda lo, hi: chain(rule, clip_per_weight(lo, hi)), rule_args=(low, high))
    elif transform == "freeze":
        mask = jax.random.uniform(jax.random.PRNGKey(4), w0.shape) < 0.4
        kw = dict(make_rule=lambda m: chain(rule, freeze(m)), rule_args=(mask,))
    elif transform == "clip":
        kw = dict(make_rule=lambda: chain(rule, clip(0.3, 0.7)))
        w0 = jnp.clip(w0, 0.3, 0.7)
    if kw:
        st = (st, ())
    name = f"rows-{transform}"
    rows = _epochs(pipe, w0, st, row_local=True, name=name, **kw)
    dense = _epochs(pipe, w0, st, row_local=False, name=name, **kw)
    _assert_same(rows, dense)
    assert np.mean(np.asarray(rows[0]) != np.asarray(w0)) > 0.2  # many weights learned
    assert _compiled(pipe, f"{name}-rows") == 1 and _compiled(pipe, name) == 1


def test_weights_outside_the_bounds_run_update_and_give_the_same_bits():
    """From N(0.8, 0.05) the first update clamps every kernel, which the winner-only form would not:
    the engine sees it before the epoch and runs ``update``."""
    pipe = _pipeline()
    rule = pipe.rstdp_rule()
    w0 = _raw_weights()
    assert not bool(jax.vmap(lambda w: row_local_holds(rule.row_local, w))(w0).any())
    st = jax.vmap(rule.init)(w0)
    rows = _epochs(pipe, w0, st, row_local=True, epochs=1, name="raw")
    dense = _epochs(pipe, w0, st, row_local=False, epochs=1, name="raw")
    _assert_same(rows, dense)
    assert _compiled(pipe, "raw-rows") == 0  # never started


def _scale(by: float) -> LearningRule:
    """A transform that scales the rows others changed by ``by`` (0.3: below R-STDP's lower bound,
    whose clamp in the next ``update`` changes those rows again, which the row-local form skips)."""
    def update(w, s, a):
        changed = jnp.any((w != a.w_before).reshape(w.shape[0], -1), axis=1)
        return jnp.where(changed[:, None, None, None], w * by, w), s

    return LearningRule(lambda w: (), update,
                        row_local=RowLocal(None, lambda w, s, a, rows: (w * by, s),
                                           lambda w, rows: jnp.ones((w.shape[0],), bool)))


def test_a_kernel_that_leaves_the_forms_conditions_mid_epoch_makes_the_engine_rerun_it_with_update():
    pipe = _pipeline()
    rule = pipe.rstdp_rule()
    w0 = jnp.clip(_raw_weights(), 0.2, 0.8)
    st = (jax.vmap(rule.init)(w0), ())
    make = lambda: chain(rule, _scale(0.3))  # noqa: E731
    lat, y = _decision_data()
    keys = jax.random.split(jax.random.PRNGKey(2), SEEDS)
    # the row-local epoch alone notices that it left the form's conditions, and its result is wrong
    alone = jax.vmap(lambda k, w, s: N.train_decision_rows(k, w, s, jnp.asarray(lat), jnp.asarray(y),
                                                           pipe.spec.decision, make(), pipe.T, 2))(keys, w0, st)
    dense = pipe.decision_epoch(keys, w0, st, lat, y, row_local=False, name="push", make_rule=make)
    assert not np.any(np.asarray(alone[3]))
    assert np.any(np.asarray(alone[0]) != np.asarray(dense[0]))
    # the engine ran it, saw the failed check and reran the epoch with update
    rows = pipe.decision_epoch(keys, w0, st, lat, y, row_local=True, name="push", make_rule=make)
    assert _compiled(pipe, "push-rows") == 1
    _assert_same(rows, dense)


def test_a_chain_declares_a_row_local_form_only_when_all_its_parts_do():
    rule = S.r_stdp()
    assert rule.row_local is not None and S.spyketorch_stdp().row_local is not None
    assert chain(rule, clip(0.2, 0.8), freeze(jnp.zeros((2, 1, 1, 1), bool))).row_local is not None
    assert chain(rule, methods.noise_lr(jax.random.PRNGKey(0), 0.1)).row_local is None  # noise touches every weight
    assert chain(clip(0.0, 1.0), freeze(jnp.zeros(3, bool))).row_local is None  # nothing names touched rows
    with pytest.raises(ConfigError, match="chain it after a rule"):
        row_local_step(clip(0.0, 1.0).row_local, jnp.zeros((3, 2)), (), S.ConvActivity(None, None, None))


def test_a_rule_without_a_row_local_form_runs_update():
    pipe = _pipeline()
    rule = pipe.rstdp_rule()
    w0 = jnp.clip(_raw_weights(), 0.2, 0.8)
    st = (jax.vmap(rule.init)(w0), jax.random.split(jax.random.PRNGKey(5), SEEDS))
    make = lambda: chain(rule, methods.noise_lr(jax.random.PRNGKey(0), 0.5))  # noqa: E731
    rows = _epochs(pipe, w0, st, row_local=True, epochs=1, name="noisy", make_rule=make)
    dense = _epochs(pipe, w0, st, row_local=False, epochs=1, name="noisy", make_rule=make)
    _assert_same(rows, dense)
    assert _compiled(pipe, "noisy-rows") == 0


def test_winner_kernels_name_each_feature_once_by_its_last_winner():
    winners = jnp.array([[3, 0, 0], [1, 0, 1], [3, 1, 1], [-1, 0, 0], [1, 2, 2]])
    np.testing.assert_array_equal(S.winner_kernels(5, winners), [5, 5, 3, 5, 1])


@pytest.mark.parametrize("clamp_all", [True, False])
@pytest.mark.parametrize("stabilizer", [True, False])
def test_stdp_update_rows_equals_the_full_update_on_those_rows(clamp_all, stabilizer):
    """k = 5 winners, two of the same feature (the later counts), on a layer's kernels."""
    rng = np.random.default_rng(7)
    weight = jnp.asarray(rng.uniform(0.0, 1.0, (6, 2, 3, 3)).astype(np.float32))
    spk_in = jnp.asarray(rng.random((4, 2, 6, 6)) < 0.4)
    spk_out = jnp.asarray(rng.random((4, 6, 4, 4)) < 0.2)
    winners = jnp.array([[2, 0, 0], [4, 1, 2], [2, 3, 3], [-1, 0, 0], [0, 2, 1]])
    a_ltp, a_ltd = jnp.linspace(0.01, 0.06, 6), -jnp.linspace(0.02, 0.07, 6)
    bounds = dict(lb=0.1, ub=0.9, stabilizer=stabilizer, clamp_all=clamp_all)
    full = S.stdp_update(weight, spk_in, spk_out, winners, a_ltp, a_ltd, **bounds)
    rows = S.winner_kernels(6, winners)
    part = S.stdp_update_rows(weight[jnp.minimum(rows, 5)], rows, 6, spk_in, spk_out, winners, a_ltp, a_ltd, **bounds)
    real = np.asarray(rows) < 6
    np.testing.assert_array_equal(np.asarray(part)[real].view(np.uint32),
                                  np.asarray(full)[np.asarray(rows)[real]].view(np.uint32))
    others = np.setdiff1d(np.arange(6), np.asarray(rows)[real])
    holds = np.asarray(S.untouched_kernels_hold(weight, lb=0.1, ub=0.9, stabilizer=stabilizer, clamp_all=clamp_all))
    for f in others:  # an untouched kernel is unchanged exactly when the form says it holds
        assert holds[f] == np.array_equal(np.asarray(full[f]), np.asarray(weight[f]))
    assert clamp_all == (not holds.all())  # uniform(0, 1) weights leave [0.1, 0.9]: only the full clamp moves them


def test_unchanged_bits_compares_bits_not_values():
    a = jnp.array([[0.0, 1.0], [1.0, 2.0], [0.5, 0.5], [1.0, jnp.nan]])
    b = jnp.array([[-0.0, 1.0], [1.0, jnp.nextafter(2.0, 3.0)], [0.5, 0.5], [1.0, jnp.nan]])
    np.testing.assert_array_equal(unchanged_bits(a, b), [False, False, True, True])


def test_row_local_step_updates_only_the_touched_rows_of_a_chain():
    rule = chain(S.r_stdp(reward=(0.3, -0.3), stabilizer=False), clip_per_weight(jnp.full((4, 1, 2, 2), 0.25),
                                                                                 jnp.full((4, 1, 2, 2), 0.75)))
    w = jnp.full((4, 1, 2, 2), 0.5)
    spk_in = jnp.ones((1, 1, 2, 2), bool)
    act = S.ConvActivity(spk_in, jnp.ones((1, 4, 1, 1)), jnp.array([[2, 0, 0]]), decision=jnp.int32(1),
                         label=jnp.int32(1))
    st = rule.init(w)
    new, st_rows, ok = row_local_step(rule.row_local, w, st, act)
    full, st_full = rule.update(w, st, act)
    assert bool(ok)
    np.testing.assert_array_equal(np.asarray(new), np.asarray(full))
    np.testing.assert_array_equal(np.asarray(new[2]), 0.75)  # 0.5 + 0.3 clipped to the range
    np.testing.assert_array_equal(np.asarray(new)[[0, 1, 3]], 0.5)
    _assert_same(st_rows, st_full)
