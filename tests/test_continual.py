"""Method 1 (continual learning): method transforms, streaming quantiles, task sequences, bad input."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnjax.cli import main, prepare_run
from snnjax.errors import ConfigError
from snnjax.plasticity import chain
from snnjax.plugins import get_registry
from snnjax.quantiles import p2_estimate, p2_init, p2_update, quantiles_estimate, quantiles_init, quantiles_update
from snnjax_plugins import continual_transforms as methods
from snnjax_plugins.conv import networks as N
from snnjax_plugins.conv import pipeline as P
from snnjax_plugins.conv.stdp import r_stdp


def _tiny_pipeline(n_classes=2):
    spec = N.NetworkSpec(
        "tiny", ((3, 1.0, 2.0), (3, 2.0, 1.0)), 1, 4,
        (N.ConvLayerSpec(2, 4, 3, 2.0, 2, 1, pad_in=1, pool=(2, 2, 0)),
         N.ConvLayerSpec(4, 6, 2, 1.0, 2, 0, pad_in=0, pool=(2, 2, 1))),
        N.ConvLayerSpec(6, 4, 2, None, 1, 0, pad_in=1), n_classes=n_classes,
    )
    return P.ConvPipeline(spec, n_classes, dict(schedule_every=3), dict(batch_size=8))


def _tiny_task(seed, n=8):
    rng = np.random.default_rng(seed)
    return (rng.random((n, 8, 8)) * 255).astype(np.uint8), rng.integers(0, 2, n).astype(np.int32)


def _decision_inputs(pipe, keys, images):
    state = pipe.init(keys)
    lat0 = pipe.encode(images)
    return state, pipe.features(state.w1, state.w2, lat0)


def test_freeze_largest_keeps_exactly_the_chosen_weights_through_task_2():
    pipe = _tiny_pipeline()
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    x, y = _tiny_task(1)
    state, lat = _decision_inputs(pipe, keys, x)
    w_task1 = state.w3
    mask = jax.vmap(lambda w: methods.largest_mask(w, 75.0))(w_task1)
    assert np.allclose(np.asarray(mask).reshape(2, -1).mean(1), 0.25, atol=0.02)
    base = pipe.rstdp_rule()
    st = (jax.vmap(base.init)(w_task1), ())
    w = w_task1
    for e in range(3):
        w, st, _ = pipe.decision_epoch(P.epoch_keys(keys, 5, e), w, st, lat, y, make_rule=lambda m: chain(base, _freeze(m)),
                                       name="test-freeze", rule_args=(mask,))
    w, m, w0 = np.asarray(w), np.asarray(mask), np.asarray(w_task1)
    np.testing.assert_array_equal(w[m], w0[m])  # bit-exact
    assert np.any(w[~m] != w0[~m])  # the others did learn
    # the pipeline's programs live on its loop: three epochs, one compile
    assert pipe.loop.timing["compiles"]["conv/test-freeze"] == 1


def test_freeze_and_ranges_in_a_conv_layer_hold_through_its_stdp_epochs():
    """``freeze_layers`` / ``langevin_layers`` with conv layers: the transform chained after STDP in
    :meth:`ConvPipeline.train_layer_epoch` keeps the frozen weights bit-exact and every weight inside its range."""
    from snnjax.plasticity import clip_per_weight

    pipe = _tiny_pipeline()
    keys = jax.random.split(jax.random.PRNGKey(2), 2)
    x, _ = _tiny_task(3, n=12)
    state = pipe.init(keys)
    lat0 = pipe.encode(x)
    mask = jax.vmap(lambda w: methods.largest_mask(w, 70.0))(state.w1)
    w, st = state.w1, (state.st1, ())
    for e in range(2):
        w, st = pipe.train_layer_epoch(0, P.epoch_keys(keys, 7, e), w, st, lat0, name="test-freeze-conv1",
                                       make_rule=lambda m: chain(pipe.stdp, _freeze(m)), rule_args=(mask,))
    w, m, w0 = np.asarray(w), np.asarray(mask), np.asarray(state.w1)
    assert m.any()
    np.testing.assert_array_equal(w[m], w0[m])
    assert np.any(w[~m] != w0[~m])

    lat1 = pipe.propagate(0, state.w1, lat0)
    low, high = jnp.clip(state.w2 - 0.005, 0.0, 1.0), jnp.clip(state.w2 + 0.005, 0.0, 1.0)
    w, st = state.w2, (state.st2, ())
    for e in range(2):
        w, st = pipe.train_layer_epoch(1, P.epoch_keys(keys, 8, e), w, st, lat1, name="test-ranges-conv2",
                                       make_rule=lambda lo, hi: chain(pipe.stdp, clip_per_weight(lo, hi)),
                                       rule_args=(low, high))
        assert np.all(np.asarray(w) >= np.asarray(low)) and np.all(np.asarray(w) <= np.asarray(high))
    plain, _ = pipe.train_layer_epoch(1, P.epoch_keys(keys, 8, 0), state.w2, state.st2, lat1)
    assert np.any(np.abs(np.asarray(plain) - np.asarray(state.w2)) > 0.005)  # unclipped, STDP leaves the ranges


def test_methods_in_conv_layers_end_to_end(tmp_path):
    """``freeze_layers=conv1,conv2`` and ``langevin_layers=conv2``: the frozen conv weights do not move
    through task 2, conv2 gets noisy task-1 epochs and ranges, and the decision layer is left alone."""
    out = tmp_path / "run"
    sets = ["n_train=20", "n_test=10", "epochs1=1", "epochs2=1", "epochs3=2", "task2_epochs1=1", "task2_epochs2=1",
            "task2_epochs3=1", "method=freeze-largest,langevin-ranges", "freeze_layers=conv1,conv2",
            "langevin_layers=conv2", "langevin_epochs=2", "langevin_every=10"]
    assert main(["run", "continual", "--quiet", "--seeds", "2", "--out", str(out), *[a for s in sets for a in ("--set", s)]]) == 0
    m = {k: np.asarray(v["per_seed"], float) for k, v in json.loads((out / "results.json").read_text())["metrics"].items()}
    for layer in ("conv1", "conv2"):
        assert np.all(m[f"freeze-largest:{layer}_frozen_fraction"] > 5)
        np.testing.assert_array_equal(m[f"freeze-largest:{layer}_frozen_weights_changed"], [0, 0])
    assert "freeze-largest:frozen_fraction" not in m and "langevin-ranges:range_width" not in m
    np.testing.assert_array_equal(m["langevin-ranges:conv2_langevin_epochs_run"], [2, 2])
    assert m["langevin-ranges:conv2_langevin_task1_accuracy"].shape == (2, 2)
    assert np.all(m["langevin-ranges:conv2_range_width"] > 0)


def _freeze(mask):
    from snnjax.plasticity import freeze

    return freeze(mask)


def test_langevin_ranges_never_leave_their_ranges():
    pipe = _tiny_pipeline()
    keys = jax.random.split(jax.random.PRNGKey(1), 2)
    x, y = _tiny_task(2)
    state, lat = _decision_inputs(pipe, keys, x)
    w0 = state.w3
    low = jnp.clip(w0 - 0.01, 0.2, 0.8)
    high = jnp.clip(w0 + 0.01, 0.2, 0.8)
    w0 = jnp.clip(w0, low, high)
    base = r_stdp(reward=(0.05, -0.05), punish=(-0.05, 0.05), batch_size=8)
    noise = methods.langevin_noise(jax.random.PRNGKey(0), sigma=0.05)
    make = lambda lo, hi: chain(base, noise, methods.langevin_ranges(lo, hi))  # noqa: E731
    st = (jax.vmap(base.init)(w0), P.epoch_keys(keys, 1, 0), ())
    w = w0
    for e in range(3):
        w, st, _ = pipe.decision_epoch(P.epoch_keys(keys, 6, e), w, st, lat, y, make_rule=make, name="test-ranges",
                                       rule_args=(low, high))
        assert np.all(np.asarray(w) >= np.asarray(low)) and np.all(np.asarray(w) <= np.asarray(high))
    assert np.any(np.asarray(w) != np.asarray(w0))


def test_noise_lr_perturbs_the_increment_only():
    rule = chain(r_stdp(batch_size=4), methods.noise_lr(jax.random.PRNGKey(3), 0.5))
    w = jnp.full((4, 1, 2, 2), 0.5)
    st = rule.init(w)
    from snnjax_plugins.conv.stdp import ConvActivity

    act = ConvActivity(jnp.ones((2, 1, 2, 2)), jnp.ones((1, 4, 1, 1)), jnp.array([[0, 0, 0]]), decision=-1, label=0)
    w2, _ = rule.update(w, st, act)  # silence: nothing changes, noise or not
    np.testing.assert_array_equal(w2, w)
    act = act._replace(decision=0)
    w3, _ = rule.update(w, st, act)
    assert np.all(np.asarray(w3[1:]) == 0.5) and np.any(np.asarray(w3[0]) != 0.5)


def test_streaming_quantiles_match_exact_quantiles_within_tolerance():
    rng = np.random.default_rng(0)
    data = rng.normal(0.5, 0.05, (1500, 200)).astype(np.float32)
    probs = (0.1, 0.25, 0.75, 0.9)
    st = quantiles_init((200,), probs)
    st, _ = jax.jit(lambda s, d: jax.lax.scan(lambda c, x: (quantiles_update(c, x, probs), None), s, d))(st, jnp.asarray(data))
    for est, p in zip(quantiles_estimate(st, probs), probs):
        err = np.abs(np.asarray(est) - np.quantile(data, p, axis=0))
        # tolerance: 0.2 σ for every weight, 0.03 σ on average (σ = 0.05)
        assert err.max() < 0.2 * 0.05 and err.mean() < 0.03 * 0.05, (p, err.max(), err.mean())
    # before 5 observations the estimate is exact; memory is 2 × 5 floats per element, whatever the length
    s = p2_init((3,))
    for v in ([0.3, 0.1, 0.2], [0.5, 0.4, 0.6], [0.2, 0.2, 0.9]):
        s = p2_update(s, jnp.asarray(v), 0.5)
    np.testing.assert_allclose(p2_estimate(s, 0.5), [0.3, 0.2, 0.6], atol=1e-7)
    assert [a.shape for a in s.q + s.n] == [(3,)] * 10


def _p2_scalar(stream: np.ndarray, p: float) -> tuple[np.ndarray, np.ndarray]:
    """Jain & Chlamtac's P² for one element, written out in float32 scalars (0-based positions):
    the markers (heights, positions) after ``stream``. The parabolic step's final multiply-add is
    rounded once, as XLA's CPU code fuses it."""
    f = np.float32
    fma = lambda a, b, c: f(np.float64(a) * np.float64(b) + np.float64(c))  # noqa: E731  (XLA fuses a·b + c)
    q, n = [f(v) for v in stream[:5]], [f(i) for i in range(5)]
    q[: min(len(stream), 5)] = sorted(q) if len(stream) >= 5 else q
    inc = [f(0.0), f(p / 2), f(p), f((1 + p) / 2), f(1.0)]
    for count, x in enumerate(stream[5:], start=6):
        x = f(x)
        k = int(x >= q[1]) + int(x >= q[2]) + int(x >= q[3])
        for i in range(k + 1, 5):
            n[i] = f(n[i] + f(1))
        q[0], q[4] = min(q[0], x), max(q[4], x)
        for i in (1, 2, 3):
            d = f(inc[i] * f(count - 1)) - n[i]
            if (d >= 1 and n[i + 1] - n[i] > 1) or (d <= -1 and n[i - 1] - n[i] < -1):
                s = f(1.0) if d >= 1 else f(-1.0)
                slope = ((n[i] - n[i - 1] + s) * (q[i + 1] - q[i]) / (n[i + 1] - n[i])
                         + (n[i + 1] - n[i] - s) * (q[i] - q[i - 1]) / (n[i] - n[i - 1]))
                parab = fma(s / (n[i + 1] - n[i - 1]), slope, q[i])
                j = i + 1 if s > 0 else i - 1
                q[i] = parab if q[i - 1] < parab < q[i + 1] else q[i] + s * (q[j] - q[i]) / (n[j] - n[i])
                n[i] = f(n[i] + s)
    return np.asarray(q, np.float32), np.asarray(n, np.float32)


def test_streaming_quantiles_equal_the_textbook_p2_bit_for_bit():
    """The vectorised estimator (five marker arrays, both branches selected element-wise) against
    the algorithm written out per element in float32: the same markers, bit for bit."""
    rng = np.random.default_rng(5)
    data = (np.cumsum(rng.normal(0, 0.02, (300, 24)), axis=0) + rng.random((300, 24))).astype(np.float32)
    probs = (0.1, 0.5, 0.9)
    for length in (3, 5, 300):
        st = jax.jit(lambda s, d: jax.lax.scan(lambda c, x: (quantiles_update(c, x, probs), None), s, d)[0])(
            quantiles_init((24,), probs), jnp.asarray(data[:length]))
        for state, p in zip(st, probs):
            assert int(state.count) == length
            if length < 5:
                continue
            for e in range(24):
                q, n = _p2_scalar(data[:length, e], p)
                np.testing.assert_array_equal([float(a[e]) for a in state.q], q)
                np.testing.assert_array_equal([float(a[e]) for a in state.n], n)


@pytest.mark.parametrize("shape, block", [((40, 50), 100), ((1009,), 97), ((7, 3), 2)])
def test_streaming_quantiles_in_blocks_equal_the_whole_array_update_bit_for_bit(shape, block):
    """``quantiles_update`` over blocks of elements (a divisor of the size, or padded blocks for a
    prime size) gives the markers of the one-pass update, also vmapped over seeds."""
    rng = np.random.default_rng(3)
    data = (np.cumsum(rng.normal(0, 0.02, (3, 40) + shape), axis=1) + rng.random((3, 1) + shape)).astype(np.float32)
    probs = (0.1, 0.25, 0.9)

    def markers(b):
        def run(d):
            return jax.lax.scan(lambda c, x: (quantiles_update(c, x, probs, block=b), None),
                                quantiles_init(shape, probs), d)[0]
        return jax.jit(jax.vmap(run))(jnp.asarray(data))

    whole, blocked = markers(10**9), markers(block)
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(blocked)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert [int(c) for c in blocked[0].count] == [40] * 3
    with pytest.raises(ValueError, match="block"):
        quantiles_update(quantiles_init(shape, probs), jnp.asarray(data[0, 0]), probs, block=0)


def test_streaming_quantile_memory_does_not_grow_with_the_number_of_snapshots():
    """A noisy trajectory of T snapshots fed to the estimator, compiled for T = 10 and T = 100,000:
    XLA's own accounting of the program's memory is the same, and the state is 2 × 5 float32 per
    weight and quantile (the thesis kept every snapshot: T × weights)."""
    probs, n = (0.1, 0.25, 0.75, 0.9), 1000

    def trajectory(key, T):
        def body(i, carry):
            w, st = carry
            w = w + 0.01 * jax.random.normal(jax.random.fold_in(key, i), w.shape)
            return w, quantiles_update(st, w, probs)
        return jax.lax.fori_loop(0, T, body, (jnp.zeros(n), quantiles_init((n,), probs)))[1]

    def keep_every_snapshot(key, T):  # the thesis' way, as a control: memory ∝ T
        def body(i, carry):
            w, buf = carry
            w = w + 0.01 * jax.random.normal(jax.random.fold_in(key, i), w.shape)
            return w, buf.at[i].set(w)
        return jax.lax.fori_loop(0, T, body, (jnp.zeros(n), jnp.zeros((T, n))))[1]

    def footprint(fn, T):
        mem = jax.jit(fn, static_argnums=1).lower(jax.random.PRNGKey(0), T).compile().memory_analysis()
        assert mem is not None, "XLA reports no memory analysis on this backend"
        return mem.temp_size_in_bytes + mem.output_size_in_bytes, mem.output_size_in_bytes

    # the measurement sees memory that grows with T when there is some...
    kept_small, kept_large = footprint(keep_every_snapshot, 10)[0], footprint(keep_every_snapshot, 10_000)[0]
    assert kept_large >= kept_small + (10_000 - 10) * n * 4
    # ...and the estimator's does not grow at all, up to 100,000 snapshots
    sizes = [footprint(trajectory, T) for T in (10, 10_000, 100_000)]
    assert sizes[0] == sizes[1] == sizes[2]
    assert sizes[0][1] <= len(probs) * n * 2 * 5 * 4 + 1024
    assert sizes[0][0] < kept_large / 10


def test_method_plugins_are_registered():
    reg = get_registry()
    for name in ("freeze-largest", "langevin-ranges", "langevin-noise", "noise-lr"):
        assert reg.info("regularizer", name).doc
    assert get_registry().names("experiment").count("continual") == 1
    rule = reg.create("regularizer", "freeze-largest", weights=jnp.arange(10.0), percentile=80.0)
    assert rule.init(jnp.zeros(10)) == ()


@pytest.mark.parametrize("sets, match", [
    (["method=rehearsal"], "unknown method"),
    (["langevin_low=0"], "langevin_low"),
    (["langevin_high=1.5"], "langevin_high"),
    (["langevin_low=0.9", "langevin_high=0.1"], "langevin_low < langevin_high"),
    (["freeze_percentile=0"], "percentile"),
    (["freeze_percentile=100"], "percentile"),
    (["task1_classes=0,1,2,3,4,5"], "more than the 5 shared outputs"),
    (["sequence=custom"], "task1_dataset and task2_dataset"),
    (["n_outputs=3"], "must divide"),
    (["sequence=nope"], "unknown sequence"),
    (["method=freeze-largest,freeze-largest"], "names a method twice"),
    (["method=baseline,freeze-largest"], "run alone"),
    (["method=inhibition,noise-lr"], "run alone"),
    (["langevin_low=0.25,0.1", "langevin_high=0.75"], "same number"),
    (["langevin_low=0.1,0.1", "langevin_high=0.9,0.9"], "repeat a pair"),
    (["langevin_stop=100"], "langevin_stop"),
    (["langevin_stop=-0.1"], "langevin_stop"),
    (["langevin_chunk_images=-1"], "langevin_chunk_images must be a non-negative integer"),
    (["langevin_epoch0_adaptive_int=-0.5"], "langevin_epoch0_adaptive_int"),
    (["method=langevin-ranges", "langevin_layers=conv2", "langevin_epoch0_adaptive_int=0.5"], "has no decision"),
    (["freeze_layers=conv3"], "unknown layer 'conv3' in freeze_layers"),
    (["langevin_layers=decision,decision"], "names a layer twice"),
    (["method=freeze-largest", "freeze_layers=conv1", "retrain_features=false"], "conv1 does not learn in task 2"),
    (["method=langevin-ranges", "langevin_layers=conv2", "task2_epochs2=0"], "conv2 does not learn in task 2"),
])
def test_bad_input_is_rejected_before_anything_runs(sets, match):
    with pytest.raises(ConfigError, match=match):
        prepare_run("continual", sets)


def test_bad_percentile_and_quantile_in_python_api():
    with pytest.raises(ConfigError, match="percentile"):
        methods.largest_mask(jnp.ones(4), 120.0)
    with pytest.raises(ConfigError, match="between 0 and 1"):
        quantiles_init((3,), (0.5, 1.0))


def test_mnist_then_emnist_letters_on_tfds_mock_data_end_to_end(tmp_path):
    """The whole sequence through tfds (mock data), tiny: 1 seed, 1 epoch per phase, the real network."""
    tfds = pytest.importorskip("tensorflow_datasets")
    out = tmp_path / "run"
    argv = ["run", "continual", "--quiet", "--seeds", "1", "--out", str(out), "--set", "sequence=mnist-emnist-letters",
            "--set", f"data_dir={tmp_path / 'tfds'}", "--set", "n_train=24", "--set", "n_test=12",
            "--set", "epochs1=1", "--set", "epochs2=1", "--set", "epochs3=1", "--set", "task2_epochs1=1",
            "--set", "task2_epochs2=0", "--set", "task2_epochs3=2", "--set", "method=freeze-largest"]
    with tfds.testing.mock_data(num_examples=120):
        assert main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    m = res["metrics"]
    assert np.asarray(m["task2_accuracy"]["per_seed"]).shape == (1, 2)
    assert np.asarray(m["task1_accuracy"]["per_seed"]).shape == (1, 2)
    v = {k: np.asarray(x["per_seed"], dtype=float) for k, x in m.items()}
    for pre in ("", "baseline_"):
        np.testing.assert_array_equal(v[f"{pre}final_task1"], v[f"{pre}task1_accuracy"][:, -1])
        np.testing.assert_array_equal(v[f"{pre}final_task2"], v[f"{pre}task2_accuracy"][:, -1])
        np.testing.assert_array_equal(v[f"{pre}forgetting"], v[f"{pre}task1_after_task1"] - v[f"{pre}final_task1"])
        # accuracies are whole test images of 12
        acc = np.concatenate([v[f"{pre}task1_accuracy"].ravel(), v[f"{pre}task2_accuracy"].ravel()])
        np.testing.assert_allclose(acc * 12 / 100, np.round(acc * 12 / 100), atol=1e-9)
    np.testing.assert_array_equal(v["task1_after_task1"], v["baseline_task1_after_task1"])  # shared task 1
    f = v["forgetting"]
    np.testing.assert_array_equal(v["forgetting_reduction"],
                                  np.where(f > 0, v["baseline_forgetting"] / np.where(f > 0, f, 1), np.nan))
    assert m["frozen_weights_changed"]["per_seed"] == [0]
    assert 0 <= v["frozen_fraction"][0] <= 10.0  # percent: at most the largest 10 % (freeze_percentile 90)
    assert res["extra"]["tasks"]["task2"]["classes"] == list(range(1, 11))
    assert (out / "forgetting.png").stat().st_size > 0


def test_tfds_sequence_offline_is_a_clear_error(tmp_path, monkeypatch, capsys):
    from snnjax import data

    monkeypatch.setattr(data, "network_reachable", lambda *a, **k: False)
    monkeypatch.delenv("SNNJAX_IDX_DIR", raising=False)
    argv = ["run", "continual", "--quiet", "--out", str(tmp_path / "r"), "--set", "sequence=mnist-emnist-letters",
            "--set", f"data_dir={tmp_path / 'empty'}"]
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert "not available" in err and "mnist-embedded" in err
    assert not (tmp_path / "r").exists()  # nothing left behind


#: The tiny config shared by the CLI tests below; each test adds its method keys. Runs with equal keys
#: are made once per module (``continual_run``): e.g. the single langevin-ranges run is the reference of
#: the resume test, one arm of the several-methods test and the one-epoch run of the stop-rule test.
#: One seed: these tests compare runs with each other (the per-seed vmapped arms are pinned for two seeds by
#: the golden continual run, and conv-layer methods on two seeds by ``test_methods_in_conv_layers_end_to_end``).
COMMON = ["n_train=20", "n_test=10", "epochs1=1", "epochs2=1", "epochs3=2", "task2_epochs1=1", "task2_epochs2=0",
          "task2_epochs3=3", "langevin_every=10", "langevin_sigma=0.01"]
LANGEVIN_ONE_EPOCH = ("method=langevin-ranges", "langevin_epochs=1")
SEEDS = 1


@pytest.fixture(scope="module")
def continual_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("continual-runs")
    done: dict[tuple[str, ...], dict] = {}

    def run(*sets: str) -> dict:
        if sets not in done:
            out = root / f"run{len(done)}"
            argv = [a for s in [*COMMON, *sets] for a in ("--set", s)]
            assert main(["run", "continual", "--quiet", "--seeds", str(SEEDS), "--out", str(out), *argv]) == 0
            done[sets] = {**json.loads((out / "results.json").read_text()), "_out": out}
        return done[sets]

    return run


def _interrupt_then_resume(tmp_path, monkeypatch, sets, stop_after: int):
    """A ``continual`` run of ``COMMON`` + ``sets`` stopped by Ctrl-C right after its ``stop_after``-th
    checkpoint write (exit 130), then resumed with ``snnjax run --resume``; returns its folder."""
    from snnjax.checkpoint import FILENAME, PhaseStore, describe

    argv = [a for s in [*COMMON, *sets] for a in ("--set", s)]
    out = tmp_path / "run"
    calls = {"n": 0}
    real_put = PhaseStore.put

    def put_then_interrupt(self, *a, **k):
        real_put(self, *a, **k)
        calls["n"] += 1
        if calls["n"] == stop_after:
            raise KeyboardInterrupt

    monkeypatch.setattr(PhaseStore, "put", put_then_interrupt)
    assert main(["run", "continual", "--quiet", "--seeds", str(SEEDS), "--out", str(out), *argv]) == 130
    assert describe(out / FILENAME)["chunk"] == stop_after
    monkeypatch.setattr(PhaseStore, "put", real_put)
    assert main(["run", "--resume", str(out), "--quiet"]) == 0
    return out


def test_interrupted_continual_run_resumes_to_the_same_results(tmp_path, monkeypatch, continual_run):
    """Ctrl-C in the middle of the method arm, then ``--resume``: the metrics equal an uninterrupted run's,
    bit for bit. Every epoch of every phase is one checkpoint: the baseline arm keeps 8 (task-1 features
    2, task-1 decision layer 2, task-2 features 1, task-2 decision layer 3), the method arm reuses the
    shared task 1 and task-2 features and keeps its Langevin epoch (9), then only the phase's ranges and
    accuracies (10: ``loop.phase(keep=...)``), so the resumed run takes the ranges without a noisy epoch."""
    out = _interrupt_then_resume(tmp_path, monkeypatch, LANGEVIN_ONE_EPOCH, stop_after=10)
    a = continual_run(*LANGEVIN_ONE_EPOCH)["metrics"]
    b = json.loads((out / "results.json").read_text())["metrics"]
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(np.asarray(a[name]["per_seed"], dtype=float),
                                      np.asarray(b[name]["per_seed"], dtype=float), err_msg=name)


def test_several_methods_in_one_run_equal_their_single_method_runs(continual_run):
    """``method=freeze-largest,langevin-ranges`` with two quantile pairs: four arms on the same seeds
    sharing task 1, the task-2 features and one Langevin trajectory; each arm's metrics equal the
    metrics of the run of that method alone."""
    both = continual_run("method=freeze-largest,langevin-ranges", "langevin_epochs=1", "langevin_low=0.25,0.1",
                         "langevin_high=0.75,0.9")
    assert [a["label"] for a in both["extra"]["arms"]] == ["baseline", "freeze-largest", "langevin-ranges 0.25/0.75",
                                                           "langevin-ranges 0.1/0.9"]
    singles = {"freeze-largest": continual_run("method=freeze-largest", "langevin_epochs=1"),
               "langevin-ranges 0.1/0.9": continual_run(*LANGEVIN_ONE_EPOCH)}
    m = both["metrics"]
    for label, single in singles.items():
        for name, value in single["metrics"].items():
            got = m[name] if name.startswith("baseline_") else m[f"{label}:{name}"]
            np.testing.assert_array_equal(np.asarray(got["per_seed"], float), np.asarray(value["per_seed"], float),
                                          err_msg=f"{label}: {name}")
    # the quartile range is inside the decile range, weight by weight, so its mean width is smaller
    q, d = (np.asarray(m[f"langevin-ranges {p}:range_width"]["per_seed"]) for p in ("0.25/0.75", "0.1/0.9"))
    assert np.all(q < d)
    assert (both["_out"] / "forgetting.png").stat().st_size > 0


def test_langevin_stop_rule_ends_a_seeds_noisy_epochs_and_drops_the_epoch_below_the_level(continual_run):
    """``langevin_stop``: a seed whose task-1 accuracy falls below the level after a noisy epoch keeps
    the ranges of the epochs before (the first epoch is always kept) and runs no further epochs."""

    def run(*sets):
        return {k: np.asarray(v["per_seed"], float) for k, v in continual_run(*sets)["metrics"].items()}

    free = run("method=langevin-ranges", "langevin_epochs=2")
    stopped = run("method=langevin-ranges", "langevin_epochs=2", "langevin_stop=99.9")
    one = run(*LANGEVIN_ONE_EPOCH)
    assert np.all(free["langevin_task1_accuracy"] < 99.9)  # so the stop rule must end every seed after epoch 1
    np.testing.assert_array_equal(free["langevin_epochs_run"], [2] * SEEDS)
    np.testing.assert_array_equal(stopped["langevin_epochs_run"], [1] * SEEDS)
    assert np.all(np.isnan(stopped["langevin_task1_accuracy"][:, 1:]))
    for name in ("range_width", "final_task1", "final_task2", "task2_accuracy"):
        np.testing.assert_array_equal(stopped[name], one[name], err_msg=name)
    assert not np.array_equal(free["range_width"], one["range_width"])


def test_the_thesis_epoch_0_is_one_more_task_1_epoch_and_sets_the_noisy_epochs_rates(continual_run):
    """``langevin_epoch0_adaptive_int``: before the noisy epochs the decision layer learns one noise-free
    R-STDP epoch. With one rate adaptation per epoch (``rstdp_batch = 0``) it uses task 1's rates and
    its image order is task 1's next epoch's, so its weights are those of a third task-1 epoch (its
    task-1 accuracy equals the ``epochs3=3`` run's); the adaptive_int it ends with sets the noisy
    epochs' rates (the ranges differ between 0.5 and 1), and the baseline arm does not change."""

    def run(*sets):
        return {k: np.asarray(v["per_seed"], float) for k, v in continual_run(*sets)["metrics"].items()}

    none = run(*LANGEVIN_ONE_EPOCH)
    half = run(*LANGEVIN_ONE_EPOCH, "langevin_epoch0_adaptive_int=0.5")
    full = run(*LANGEVIN_ONE_EPOCH, "langevin_epoch0_adaptive_int=1.0")
    longer = run("method=baseline", "epochs3=3")
    assert "langevin_epoch0_task1_accuracy" not in none
    np.testing.assert_array_equal(half["langevin_epoch0_task1_accuracy"], longer["task1_after_task1"])
    np.testing.assert_array_equal(full["langevin_epoch0_task1_accuracy"], longer["task1_after_task1"])
    assert not np.array_equal(half["range_width"], full["range_width"])
    assert not np.array_equal(half["range_width"], none["range_width"])
    for name in none:
        if name.startswith("baseline_"):
            np.testing.assert_array_equal(half[name], none[name], err_msg=name)


def _noisy_epochs(chunk_images: int, stop: float):
    """:func:`_langevin_ranges` on a toy layer (2 seeds, 3 × 4 weights, 52 images in 10 blocks of 5) whose
    'accuracy' falls as the weights drift from their start."""
    from snnjax.loop import RunLoop
    from snnjax_plugins.experiments.continual.langevin import _langevin_ranges

    cfg = {"langevin_every": 5, "langevin_sigma": 0.01, "langevin_stop": stop, "langevin_epochs": 4,
           "langevin_low": [0.25, 0.1], "langevin_high": [0.75, 0.9], "langevin_chunk_images": chunk_images}
    keys = jax.random.split(jax.random.PRNGKey(3), 2)
    w0 = jax.random.uniform(jax.random.PRNGKey(4), (2, 3, 4), minval=0.3, maxval=0.7)
    x = jax.random.uniform(jax.random.PRNGKey(5), (2, 52, 4), minval=0.2, maxval=0.8)
    y = np.arange(52) % 3

    def step(w, st, xi, label):  # label 0: no update, so no noise
        decision = jnp.where(label == 0, -1, 1).astype(jnp.int32)
        w_mid = jnp.where(decision >= 0, w + 0.05 * (xi[None, :] - w), w)
        return w_mid, st + 1, decision

    def evaluate(w):
        return 100.0 - 400.0 * jnp.mean(jnp.abs(w - w0).reshape(2, -1), axis=1)

    estimates, acc = _langevin_ranges(RunLoop.local(), None, cfg, keys, w0, jnp.zeros(2, jnp.int32), step,
                                      (0.2, 0.8), "toy", 40, x, y, evaluate, "noisy")
    return np.asarray(estimates), acc


@pytest.fixture(scope="module")
def whole_noisy_epochs():
    """The toy's whole epochs (``langevin_chunk_images = 0``) with a stop level that ends some seed's
    epochs early, and that level."""
    _, free = _noisy_epochs(0, 0.0)
    stop = float(np.mean(free[:, 1:3]))  # between the 2nd and 3rd epoch's accuracy of the seeds
    whole = _noisy_epochs(0, stop)
    runs = np.sum(~np.isnan(whole[1]), axis=1)
    assert np.any(runs < 4) and np.all(runs >= 1)  # the stop rule acted
    return whole, stop


@pytest.mark.parametrize("chunk_images", [5, 15, 50])
def test_a_noisy_epoch_cut_into_parts_gives_the_whole_epochs_results_bit_for_bit(chunk_images, whole_noisy_epochs):
    """``langevin_chunk_images``: parts of 1, 3 (3 + 3 + 3 + 1 blocks) and all 10 blocks give the ranges
    and accuracies of whole epochs (0), also where the stop rule sends a seed back to its epoch's start."""
    from snnjax_plugins.experiments.continual.langevin import epoch_parts

    assert [epoch_parts(10, 5, c) for c in (0, 5, 15, 50, 1000, 3)] == [(10, 1), (1, 10), (3, 4), (10, 1),
                                                                       (10, 1), (1, 10)]
    whole, stop = whole_noisy_epochs
    cut = _noisy_epochs(chunk_images, stop)
    np.testing.assert_array_equal(cut[0], whole[0])
    np.testing.assert_array_equal(cut[1], whole[1])


def test_a_run_interrupted_inside_a_noisy_epoch_resumes_to_the_same_results(tmp_path, monkeypatch, continual_run):
    """Two parts per noisy epoch (``langevin_chunk_images=10``, 2 blocks of 10 images): Ctrl-C after the
    first part of the second epoch, then ``--resume``; the stop rule at the end of that epoch sends the
    seed back to the epoch's start, read from the checkpoint. The metrics equal whole epochs' run."""
    stopped = ("method=langevin-ranges", "langevin_epochs=2", "langevin_stop=99.9")
    # after the baseline arm's 8 chunks, the first epoch's 2 parts and the second epoch's first
    out = _interrupt_then_resume(tmp_path, monkeypatch, (*stopped, "langevin_chunk_images=10"), stop_after=11)
    doc = json.loads((out / "results.json").read_text())
    noisy = [v for k, v in doc["timing"]["phases"].items() if k.startswith("langevin-")]
    assert [p["chunks_run"] for p in noisy] == [1]  # the resumed run ran the last part only
    a, b = continual_run(*stopped)["metrics"], doc["metrics"]
    assert a.keys() == b.keys()
    np.testing.assert_array_equal(b["langevin_epochs_run"]["per_seed"], [1] * SEEDS)
    for name in a:
        np.testing.assert_array_equal(np.asarray(a[name]["per_seed"], dtype=float),
                                      np.asarray(b[name]["per_seed"], dtype=float), err_msg=name)
