"""Experiment ``use-it-or-lose-it``: config validation, test-set construction, a tiny end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from snnjax.config import resolve
from snnjax.errors import ConfigError
from snnjax_plugins.experiments.use_it_or_lose_it import DEFAULTS, gaussian_blur, noise_sets, use_it_or_lose_it


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
    ],
)
def test_bad_configs_fail_before_compile(over, match):
    with pytest.raises(ConfigError, match=match):
        use_it_or_lose_it().validate(_cfg(**over))


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
    cfg = _cfg(n_train=6, train_chunk=3, n_test=4, t_present_ms=30.0, t_rest_ms=10.0, tau_prun_ms=20.0)
    exp.validate(cfg)
    seen = []
    ctx = RunContext(config=cfg, n_seeds=2, out_dir=tmp_path, registry=get_registry(),
                     progress=lambda done, total, what="": seen.append((done, total)))
    result = exp.run(ctx)
    assert seen[-1] == (7, 7)  # 2 training chunks + the flush + 4 test sets
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
    assert np.asarray(rates["with"]).shape == (2, 2) and np.all(np.isfinite(rates["without"]))
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
