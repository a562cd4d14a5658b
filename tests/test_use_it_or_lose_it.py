"""Experiment ``use-it-or-lose-it``: config validation, test-set construction, a tiny end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from snnjax.config import resolve
from snnjax.errors import ConfigError
from snnjax_plugins.experiments.use_it_or_lose_it import (
    DEFAULTS,
    flush_mode,
    gaussian_blur,
    noise_sets,
    prepare_data,
    repeat_passes,
    split_models,
    use_it_or_lose_it,
)


def _cfg(**over):
    return resolve(DEFAULTS, ("test", over))


@pytest.mark.parametrize(
    "over, match",
    [
        ({"tau_prun_ms": -1.0}, "tau_prun_ms must be > 0"),
        ({"k_p_train": 0.5}, "k_p_train must be 0"),
        ({"k_p_test": 2.0}, "k_p_test must be 0"),
        ({"test_sets": ["nosie", "known"]}, "unknown test set 'nosie'.*noise"),
        ({"test_sets": []}, "test_sets must name"),
        ({"semantics": "eager"}, "semantics must be one of"),
        ({"flush": "always"}, "flush must be one of"),
        ({"known_classes": [7, 4, 6], "unknown_classes": [9, 4]}, "overlap"),
        ({"n_exc": 31}, "cannot be split"),
        ({"n_test": 0}, "n_test must be a positive"),
        ({"n_train": -3}, "n_train must be"),
        ({"k_p_flush": 0.5}, "k_p_flush must be 0"),
        ({"passes": 0}, "passes must be a positive"),
        ({"test_start": "warm"}, "test_start must be one of"),
        ({"k_p_flush": 0.0}, "k_p_train = 0 .*needs k_p_flush = 1.*no decay at all"),
        ({"flush": "none"}, "k_p_train = 0 .* flush = 'none' .no decay at all"),
        ({"flush_ms": 0.0}, "Poisson flush of flush_ms = 0 .* no input spike"),
        ({"semantics": "continuous", "flush": "poisson"}, "continuous' with k_p_train = 0 needs flush = 'exact'"),
        ({"semantics": "continuous", "k_p_train": 1.0, "flush": "exact"}, "would apply it twice"),
        ({"grace_ms": -5.0}, "grace_ms must be a number of ms"),
        ({"protect": "segment"}, "protect must be one of none, label"),
        ({"floor": 1.2}, "floor must be a fraction"),
        ({"k_p_train": 1.0, "floor": 0.5, "semantics": "continuous", "flush": "none"}, "lazy semantics only"),
        ({"grace_ms": 100.0, "flush": "exact"}, "grace_ms needs the Poisson flush"),
    ],
)
def test_bad_configs_fail_before_compile(over, match):
    with pytest.raises(ConfigError, match=match):
        use_it_or_lose_it().validate(_cfg(**over))


def test_default_is_the_published_protocol_and_auto_flush_follows_the_schedule():
    """Default: k_p = 0 in training, 1 in the flush, 0 at test; every allowed schedule decays exactly once."""
    cfg = _cfg()
    assert (cfg["k_p_train"], cfg["k_p_flush"], cfg["k_p_test"]) == (0.0, 1.0, 0.0)
    use_it_or_lose_it().validate(cfg)
    assert flush_mode(cfg) == "poisson"
    assert flush_mode(_cfg(semantics="continuous")) == "exact"  # the one-shot decay of the pending time
    assert flush_mode(_cfg(semantics="continuous", k_p_train=1.0)) == "none"  # always up to date
    for over in ({"semantics": "continuous"}, {"semantics": "continuous", "k_p_train": 1.0},
                 {"k_p_train": 1.0}, {"flush": "exact"}, {"k_p_train": 1.0, "flush": "none"}):
        use_it_or_lose_it().validate(_cfg(**over))


def test_options_beyond_the_thesis_reach_the_regularizer_and_default_off():
    """``grace_ms``, ``protect`` and ``floor`` are off by default (the thesis' rule, its fast form kept)."""
    from snnjax.plugins import get_registry
    from snnjax_plugins.experiments.use_it_or_lose_it import build_model

    reg = get_registry()
    _, rule, _ = build_model(_cfg(), reg)
    assert rule.fast is not None and rule.parts[1][1].fast.grace_ms == 0.0
    _, rule, _ = build_model(_cfg(k_p_train=1.0, grace_ms=30000.0), reg)
    assert rule.fast is not None and rule.parts[1][1].fast.grace_ms == 30000.0
    for over in ({"protect": "label"}, {"floor": 0.6}):
        _, rule, _ = build_model(_cfg(k_p_train=1.0, **over), reg)
        assert rule.fast is None  # general plasticity path
        use_it_or_lose_it().validate(_cfg(k_p_train=1.0, **over))


def test_repeat_passes_reshuffles_each_pass_to_the_requested_length():
    n = 40
    x = np.arange(n)[:, None] * np.ones((1, 3), np.uint8)
    seg = np.arange(n) % 3
    same_x, same_seg = repeat_passes(x, seg, 1.0, np.random.default_rng(0))
    np.testing.assert_array_equal(same_x, x)  # one pass: the seed's order, nothing drawn
    rx, rseg = repeat_passes(x, seg, 2.5, np.random.default_rng(0))
    assert rx.shape == (100, 3) and rseg.shape == (100,)
    ids = rx[:, 0]
    np.testing.assert_array_equal(ids[:n], np.arange(n))
    np.testing.assert_array_equal(np.sort(ids[n:2 * n]), np.arange(n))  # a full pass: every image once
    assert not np.array_equal(ids[n:2 * n], ids[:n])  # reshuffled
    assert len(set(ids[2 * n:].tolist())) == 20  # the half pass: 20 distinct images
    np.testing.assert_array_equal(rseg, seg[ids])  # labels follow their images
    # the 15,000 presentations of the original from 1,200 images
    big, _ = repeat_passes(np.zeros((1200, 1), np.uint8), np.zeros(1200, np.int32), 12.5, np.random.default_rng(1))
    assert len(big) == 15000


def test_prepare_data_passes_keep_the_first_pass_and_the_test_sets():
    from snnjax.plugins import get_registry

    reg = get_registry()
    one = prepare_data(_cfg(n_train=30, n_test=5), [3], reg)
    three = prepare_data(_cfg(n_train=30, n_test=5, passes=3), [3], reg)
    assert three.train_x.shape == (1, 90, 784)
    np.testing.assert_array_equal(three.train_x[:, :30], one.train_x)  # passes = 1 draws nothing new
    for name in one.test_x:
        np.testing.assert_array_equal(three.test_x[name], one.test_x[name])


def _tiny_programs(**over):
    """A small, fast version of the experiment's network: short images, 0.5 ms steps."""
    from snnjax.plugins import get_registry

    from snnjax_plugins.experiments import use_it_or_lose_it as E

    cfg = _cfg(t_present_ms=40.0, t_rest_ms=20.0, dt_ms=0.5, **over)
    use_it_or_lose_it().validate(cfg)
    netcfg, rule, tau = E.build_model(cfg, get_registry())
    return cfg, netcfg, rule, tau, E.make_programs(netcfg, rule, tau, cfg)


def _train_pair(cfg, netcfg, rule, train_chunk, n_images=12):
    """Networks "without" (k_p = 0) and "with" (k_p = k_p_train) from one seed, trained on the same images
    with the same keys (the unshared program); returns the batched state."""
    import jax
    import jax.numpy as jnp

    from snnjax_plugins import network as net
    from snnjax_plugins.regularizers import set_kp
    from snnjax_plugins.experiments import use_it_or_lose_it as E
    from snnjax.plugins import get_registry

    data = E.prepare_data(dict(cfg, n_train=n_images, n_test=2), [0], get_registry())
    x = jnp.asarray(np.concatenate([data.train_x] * 2))
    s = jnp.asarray(np.concatenate([data.train_seg] * 2))

    def init(kp):
        st = net.init_network(jax.random.key(0), netcfg, rule)
        return st._replace(rule_state=set_kp(st.rule_state, kp))

    state = jax.vmap(init)(jnp.asarray([0.0, cfg["k_p_train"]]))
    keys = jnp.stack([jax.random.key(1)] * 2)
    state, counts = jax.jit(jax.vmap(train_chunk))(state, keys, x, s)
    assert int(counts[0].sum()) > 0  # the network fired: STDP and All-LTD acted
    return state


def test_default_models_are_bit_equal_until_the_flush():
    """With k_p_train = 0 "with" and "without" are the same network before the flush (so the run trains it
    once per seed); with k_p_train = 1 they differ."""
    import jax

    cfg, netcfg, rule, tau, (train_chunk, *_rest) = _tiny_programs(tau_prun_ms=30.0)
    state = _train_pair(cfg, netcfg, rule, train_chunk)
    w = np.asarray(state.w)
    np.testing.assert_array_equal(w[0], w[1])
    for a, b in zip(jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda x: x[0], state)),
                    jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda x: x[1], state))):
        if jax.numpy.issubdtype(a.dtype, jax.dtypes.prng_key):
            continue
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    cfg1, netcfg1, rule1, _, (train_chunk1, *_r) = _tiny_programs(tau_prun_ms=30.0, k_p_train=1.0)
    w1 = np.asarray(_train_pair(cfg1, netcfg1, rule1, train_chunk1).w)
    np.testing.assert_array_equal(w1[0], w[0])  # the "without" model is the same program
    assert np.max(np.abs(w1[1] - w1[0])) > 1e-3  # the decay during training changed the "with" model


def test_split_models_orders_models_outermost():
    import jax.numpy as jnp

    trained = {"w": jnp.arange(6.0).reshape(3, 2)}
    both = split_models(trained, 2)
    np.testing.assert_array_equal(np.asarray(both["w"]), np.concatenate([np.arange(6.0).reshape(3, 2)] * 2))


def test_flush_prunes_each_row_once_by_recency():
    """After the flush, "with" = "without" × exp(−((t_first − t_s)/τ)²) on the rows of inputs that spiked in
    it, and = "without" on the others; "without" is the trained network unchanged.

    A one-step flush (0.5 ms at 63.75 Hz) makes ``t_first`` the flush's start for every input that
    spiked (its ``t_s`` moved there); the thesis' 50 ms flush is checked against bounds."""
    import jax
    import jax.numpy as jnp

    from snnjax_plugins.regularizers import find_state

    tau = 3000.0
    for flush_ms in (0.5, 50.0):
        cfg, netcfg, rule, _, (train_chunk, flush, _e, _a) = _tiny_programs(tau_prun_ms=tau, flush_ms=flush_ms,
                                                                            flush_rate_hz=63.75)
        trained = _train_pair(cfg, netcfg, rule, train_chunk, n_images=30)
        t_s = np.asarray(find_state(trained.rule_state).t_s[0], np.float64)
        t0 = float(trained.step[0]) * netcfg.dt_ms  # the flush's first step, ms
        keys = jnp.stack([jax.random.key(5)] * 2)
        after = jax.jit(jax.vmap(flush))(trained, keys, jnp.asarray([0.0, 1.0]))
        w_trained = np.asarray(trained.w[0], np.float64)
        w_without, w_with = np.asarray(after.w[0], np.float64), np.asarray(after.w[1], np.float64)
        np.testing.assert_array_equal(w_without, w_trained)  # k_p = 0 and learning off: untouched
        spiked = np.asarray(find_state(after.rule_state).t_s[1]) >= t0
        assert 0 < spiked.sum() < 784
        np.testing.assert_array_equal(w_with[~spiked], w_without[~spiked])  # pending decay still pending
        gap = t0 - t_s[spiked]
        assert gap.max() > tau / 2  # some rows lose most of their weight, some (recent ones) little
        first = np.exp(-((gap / tau) ** 2))[:, None] * w_without[spiked]
        if flush_ms == 0.5:
            np.testing.assert_allclose(w_with[spiked], first, rtol=2e-6, atol=1e-12)
        else:  # first spike somewhere in the 50 ms, later flush spikes multiply by ≥ exp(−(50/τ)²)
            last = np.exp(-(((gap + flush_ms) / tau) ** 2))[:, None] * w_without[spiked]
            assert np.all(w_with[spiked] <= first * (1 + 2e-6) + 1e-12)
            assert np.all(w_with[spiked] >= last * np.exp(-((flush_ms / tau) ** 2)) ** 20 * (1 - 2e-6) - 1e-12)
            assert spiked.mean() > 0.9  # ≈ 96 % of inputs fire in 50 ms at 63 Hz


def test_rested_start_lowers_the_response_to_the_first_test_image():
    """Parallel test images start from the flush + one silent slot (``test_start = "rested"``): the
    conductances raised by the flush's input have decayed; from the flush's last step they have not."""
    import jax
    import jax.numpy as jnp

    cfg, netcfg, rule, tau, programs = _tiny_programs(tau_prun_ms=3000.0)
    trained = _train_pair(cfg, netcfg, rule, programs[0], n_images=6)
    keys = jnp.stack([jax.random.key(5)] * 2)
    after = jax.jit(jax.vmap(programs[1]))(trained, keys, jnp.asarray([0.0, 1.0]))
    noise = jnp.asarray(np.random.default_rng(0).random((1, 8, 784)) * 40.0, jnp.float32)
    counts = {}
    for start in ("rested", "flush"):
        _, netcfg_s, rule_s, tau_s, progs = _tiny_programs(tau_prun_ms=3000.0, test_start=start)
        one = jax.tree_util.tree_map(lambda x: x[:1], after)
        counts[start] = np.asarray(jax.jit(jax.vmap(progs[2]))(one, jnp.stack([jax.random.key(7)]), noise))
    assert counts["flush"].sum() > counts["rested"].sum()


def test_cli_reports_bad_config(capsys):
    from snnjax.cli import main

    rc = main(["run", "use-it-or-lose-it", "--set", "tau_prun_ms=-5", "--quiet", "--dry-run"])
    err = capsys.readouterr().err
    assert rc != 0 and "tau_prun_ms" in err


def test_noise_sets_are_mean_matched():
    cfg = _cfg()
    sets = noise_sets(np.random.default_rng(0), 50, 0.13, cfg)
    for name in ("noise", "blurred"):
        x = sets[name]
        assert x.shape == (50, 784) and x.min() >= 0 and x.max() <= 255
        assert abs(x.mean() / 255 - 0.13) < 1e-3
    # per-image blur does not mix images; the original's quirk does
    a = np.zeros((3, 28, 28))
    a[1, 14, 14] = 1.0
    assert gaussian_blur(a, 2.0, False)[0].max() == 0.0
    assert gaussian_blur(a, 2.0, True)[0].max() > 0.0
    # an explicit divider (the original's ≈ 16)
    div = noise_sets(np.random.default_rng(0), 50, 0.13, _cfg(noise_divider=16.0))["noise"]
    assert abs(div.mean() / 255 - 0.5 / 16) < 2e-3


def test_tiny_end_to_end(tmp_path):
    from snnjax import data
    from snnjax.experiment import RunContext
    from snnjax.plugins import get_registry

    exp = use_it_or_lose_it()
    cfg = _cfg(n_train=6, passes=2, train_chunk=3, n_test=4, t_present_ms=30.0, t_rest_ms=10.0, tau_prun_ms=20.0)
    exp.validate(cfg)
    seen = []
    ctx = RunContext(config=cfg, n_seeds=2, out_dir=tmp_path, registry=get_registry(),
                     progress=lambda done, total, what="": seen.append((done, total)))
    result = exp.run(ctx)
    assert seen[-1] == (9, 9)  # 4 training chunks (2 passes over 6 images) + the flush + 4 test sets
    assert result.extra["training_images"] == 12 and result.extra["shared_training"]
    for name in ("noise", "blurred", "known", "unknown"):
        for model in ("with", "without"):
            v = result.metrics[f"{name}_total_{model}"]
            assert v.shape == (2,) and np.all(np.isfinite(v)) and np.all(v >= 0)
            np.testing.assert_allclose(result.metrics[f"{name}_per_image_{model}"], v / 4)
    assert result.metrics["accuracy_with"].shape == (2,)
    for fig in ("responses.png", "receptive_fields.png"):
        assert (tmp_path / fig).stat().st_size > 1000
    assert result.extra["flush"] == "poisson" and result.extra["tau_prun_ms"] == 20.0
    # the training response per chunk of images, per model and seed
    rates = result.extra["train_spikes_per_image"]
    assert set(rates) == {"without", "with"}
    assert np.asarray(rates["with"]).shape == (2, 4) and np.all(np.isfinite(rates["without"]))
    assert rates["with"] == rates["without"]  # k_p_train = 0: one network per seed until the flush
    json.dumps({k: v.tolist() for k, v in result.metrics.items()})  # serialisable
    # pixels dark in every training image never fired: their weights vanish in the regularised model after
    # the flush (≈ 96 % of inputs fire in its 50 ms at 63 Hz), and keep their initial value without it
    w = np.load(tmp_path / "weights.npz")
    train = data.load("mnist-embedded", "train", classes=[7, 4, 6])
    dark = train.images.reshape(len(train), -1).max(axis=0) == 0  # dark in *every* image: never fired
    assert dark.sum() > 20
    gone = np.all(w["with_"][:, dark, :] < 1e-6, axis=-1)
    assert gone.mean() > 0.85
    assert np.all(w["without"][:, dark, :].mean(axis=-1) > 0.01)


def test_default_regularised_network_answers_known_digits(tmp_path):
    """The published protocol (k_p = 0 in training, the decay once at the flush) keeps the regularised
    network alive on known digits while it answers noise less than the unregularised one."""
    from snnjax.experiment import RunContext
    from snnjax.plugins import get_registry

    exp = use_it_or_lose_it()
    cfg = _cfg(n_train=60, train_chunk=30, n_test=12, dt_ms=0.5, test_sets=["noise", "known"])
    exp.validate(cfg)
    ctx = RunContext(config=cfg, n_seeds=1, out_dir=tmp_path, registry=get_registry(), progress=lambda *a: None)
    m = exp.run(ctx).metrics
    assert m["known_per_image_without"][0] > 1.0
    assert m["known_per_image_with"][0] > 0.5  # not silent
    assert m["noise_per_image_with"][0] < m["noise_per_image_without"][0]


def test_parallel_test_presentations_in_batches_equal_all_at_once(monkeypatch):
    """``test_mode = "parallel"`` presents the images TEST_BATCH at a time: the counts do not depend on it."""
    import jax
    import jax.numpy as jnp

    from snnjax.plugins import get_registry
    from snnjax_plugins import network as net
    from snnjax_plugins.experiments import use_it_or_lose_it as E

    cfg = _cfg(t_present_ms=40.0, t_rest_ms=10.0)
    netcfg, rule, tau = E.build_model(cfg, get_registry())
    state = net.init_network(jax.random.key(0), netcfg, rule)
    images = jnp.asarray(np.random.default_rng(0).integers(0, 256, (7, 784)), jnp.float32)
    counts = {}
    for batch in (3, 100):
        monkeypatch.setattr(E, "TEST_BATCH", batch)
        evaluate = E.make_programs(netcfg, rule, tau, cfg)[2]
        counts[batch] = np.asarray(jax.jit(evaluate)(state, jax.random.key(2), images))
    assert counts[3].shape == (7, netcfg.n_exc) and counts[3].sum() > 0
    np.testing.assert_array_equal(counts[3], counts[100])
