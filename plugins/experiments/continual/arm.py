"""One arm of the ``continual`` experiment: task 1, the method's preparation and task 2, each training
stage a phase of the run's loop (``ctx.loop.phase``: a chunk per epoch, checkpointed, skipped on resume).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from snnjax.experiment import RunResult
from snnjax.plasticity import chain, clip_per_weight, freeze

from ... import continual_transforms as methods
from ...conv import pipeline as P
from .config import CONV_LAYERS, TASK1_DECISION_TAG, langevin_probabilities
from .langevin import _layer_langevin
from .metrics import _layer_metric


def _train_features(loop, pipe, keys, state, lat0_stdp, e1, e2, tag, times, phase, rules=None):
    """Phase ``phase``: ``e1`` STDP epochs of layer 1, then ``e2`` of layer 2, from ``state`` (a chunk per epoch).

    ``rules`` maps a layer index (0, 1) to ``(name, make_rule, rule_args)``: that layer trains
    under ``make_rule(*rule_args)``, a chain of the pipeline's STDP rule and a transform (state
    ``(stdp state, ())``) instead of the plain STDP rule. Epoch ``e`` of layer ``i`` draws from the
    stream ``(tag + 1 + i, e)``.
    """
    rules = rules or {}
    lat1: dict[str, object] = {}  # layer 2's input: the outputs of the trained, frozen layer 1

    def epoch(index, e, w, st, cache):
        k = loop.fold(keys, tag + 1 + index, e)
        if index not in rules:
            return pipe.train_layer_epoch(index, k, w, st, cache)
        name, make, args = rules[index]
        w, (st, _) = pipe.train_layer_epoch(index, k, w, (st, ()), cache, name=name, make_rule=make, rule_args=args)
        return w, st

    def body(c, state):
        if c < e1:
            (w1, st1), dt = P.timed(epoch, 0, c, state.w1, state.st1, lat0_stdp)
            times["layer1"].append(round(dt, 3))
            return state._replace(w1=w1, st1=st1)
        if not lat1:
            lat1["cache"] = pipe.propagate(0, state.w1, lat0_stdp)
        (w2, st2), dt = P.timed(epoch, 1, c - e1, state.w2, state.st2, lat1["cache"])
        times["layer2"].append(round(dt, 3))
        return state._replace(w2=w2, st2=st2)

    return loop.phase(phase, e1 + e2, body, state, unit="feature epochs")


def run_arm(arm: dict, cfg, keys, data, n_out, ctx, cache: dict, times, partial_metrics: dict) -> dict[str, np.ndarray]:
    """Task 1, the method's preparation and task 2 for one arm; per-seed metrics.

    Every training stage is a phase of ``ctx.loop`` (every epoch kept in the run's checkpoint:
    ``snnjax run --resume`` skips what is done). ``cache`` holds what the arms of the run share: the
    pipeline of each pair of radii (so its compiled programs), task 1, the task-2 features and the
    Langevin trajectories.
    """
    (x1, y1, xt1, yt1), (x2, y2, xt2, yt2) = data
    method, (r1, r2) = arm["method"], arm["radii"]
    acfg = {**cfg, "radius1": r1, "radius2": r2}
    loop = ctx.loop
    if ("pipeline", r1, r2) not in cache:
        cache[("pipeline", r1, r2)] = P.pipeline_from_config(acfg, n_out, len(y1), loop=loop)
    pipe = cache[("pipeline", r1, r2)]
    S = keys.shape[0]
    n1, n2 = len(y1), len(y2)
    n_stdp1 = min(cfg["n_train_stdp"] or n1, n1)
    n_stdp2 = min(cfg["n_train_stdp"] or n2, n2)
    lat_t1 = pipe.encode(np.concatenate([x1, xt1]))
    lat_t2 = pipe.encode(np.concatenate([x2, xt2]))
    noisy = method == "noise-lr"

    # ---- task 1 (shared by the arms with the same radii / decision rule)
    fkey = f"task1-features-R{r1}-{r2}"
    if fkey not in cache:
        state = _train_features(loop, pipe, keys, pipe.init(keys), lat_t1[:n_stdp1], cfg["epochs1"], cfg["epochs2"], 10,
                                times, fkey)
        cache[fkey] = (state, pipe.features(state.w1, state.w2, lat_t1))
    state, lat2_t1 = cache[fkey]
    dkey = f"task1-decision-R{r1}-{r2}{'-noise-lr' if noisy else ''}"
    if dkey not in cache:
        if noisy:
            base, std = pipe.rstdp_rule(), float(cfg["noise_lr_std"])
            make, name = (lambda: chain(base, methods.noise_lr(jax.random.PRNGKey(0), std))), f"t1-noise-lr-{std}"
            st3 = (state.st3, loop.fold(keys, 20, 0))
        else:
            make, name, st3 = None, "decision", state.st3

        def decision_epoch(e, carry):
            w3, st3 = carry
            (w3, st3, _), dt = P.timed(pipe.decision_epoch, loop.fold(keys, TASK1_DECISION_TAG, e), w3, st3,
                                       lat2_t1[:, :n1], y1, make_rule=make, name=name, rule_args=())
            times["decision"].append(round(dt, 3))
            return w3, st3

        w3, st3 = loop.phase(dkey, cfg["epochs3"], decision_epoch, (state.w3, st3), unit="task-1 decision epochs")
        rstdp_state = st3[0] if noisy else st3
        cache[dkey] = (w3, rstdp_state, np.asarray(pipe.evaluate(w3, lat2_t1[:, n1:], yt1).accuracy))
    w3, st3_task1, acc_t1 = cache[dkey]
    out: dict[str, np.ndarray] = {"task1_after_task1": acc_t1}

    # ---- method preparation on task 1
    rstdp2 = pipe.rstdp_rule(adaptive_int=float(cfg["task2_adaptive_int"]), batch_size=n2)
    make, args, extra_state = (lambda: rstdp2), (), None  # the decision layer's task-2 rule
    conv_rules: dict[int, tuple] = {}  # layer index -> (program name, make_rule, rule_args) in task 2
    task1_weights = {"conv1": state.w1, "conv2": state.w2, "decision": w3}
    if method == "freeze-largest":
        pct = float(cfg["freeze_percentile"])
        masks = {}
        for layer in cfg["freeze_layers"]:
            masks[layer] = loop.batched(lambda w: methods.largest_mask(w, pct), name="largest_mask")(task1_weights[layer])
            out[_layer_metric(layer, "frozen_fraction")] = 100.0 * np.asarray(jnp.mean(masks[layer].reshape(S, -1), axis=1))
        for index, layer in enumerate(CONV_LAYERS):
            if layer in masks:
                conv_rules[index] = (f"t2-freeze-{layer}", lambda m: chain(pipe.stdp, freeze(m)), (masks[layer],))
        if "decision" in masks:
            make, args, extra_state = (lambda m: chain(rstdp2, freeze(m))), (masks["decision"],), ()
    elif method == "langevin-ranges":
        probs = langevin_probabilities(cfg)
        for layer in cfg["langevin_layers"]:
            lkey = f"langevin-{dkey}" if layer == "decision" else f"langevin-{layer}-{dkey}"
            if lkey not in cache:
                cache[lkey] = _layer_langevin(loop, pipe, cfg, keys, layer, state, w3, st3_task1, lat_t1, lat2_t1, n1,
                                              n_stdp1, y1, yt1, phase=lkey)
            estimates, lang_acc, accuracy0 = cache[lkey]
            if accuracy0 is not None:
                out[_layer_metric(layer, "langevin_epoch0_task1_accuracy")] = accuracy0
            low, high = (estimates[probs.index(q)] for q in arm["quantiles"])
            out[_layer_metric(layer, "langevin_task1_accuracy")] = lang_acc
            out[_layer_metric(layer, "langevin_epochs_run")] = np.sum(~np.isnan(lang_acc), axis=1)
            out[_layer_metric(layer, "range_width")] = np.asarray(jnp.mean((high - low).reshape(S, -1), axis=1))
            if layer == "decision":
                w3 = jnp.clip(w3, low, high)
                make, args, extra_state = (lambda lo, hi: chain(rstdp2, clip_per_weight(lo, hi))), (low, high), ()
            else:
                index = CONV_LAYERS.index(layer)
                conv_rules[index] = (f"t2-ranges-{layer}", lambda lo, hi: chain(pipe.stdp, clip_per_weight(lo, hi)),
                                     (low, high))
    elif "choice" in arm:  # a registered regularizer, chained after R-STDP on the decision layer in task 2
        build = methods.method_transform(ctx.registry, arm["choice"], lb=float(pipe.rstdp_params.get("lb", 0.2)),
                                         ub=float(pipe.rstdp_params.get("ub", 0.8)), n_classes=n_out)
        make, args = (lambda w, k: chain(rstdp2, build(w, k))), (w3, loop.fold(keys, 22, 0))
        extra_state = loop.batched(lambda w, k: build(w, k).init(w), name=f"{arm['method']}_init")(*args)
    elif noisy:
        std = float(cfg["noise_lr_std"])
        make, args, extra_state = (lambda: chain(rstdp2, methods.noise_lr(jax.random.PRNGKey(0), std))), (), loop.fold(keys, 21, 0)
    st3 = loop.batched(rstdp2.init, name="rstdp_init")(w3)
    if extra_state is not None:
        st3 = (st3, extra_state)

    # ---- task 2: features continue on task 2 (under the method where it names conv layers), then the
    # decision layer learns under the method
    tkey = f"task2-features-R{r1}-{r2}"  # without conv-layer transforms the STDP layers do not depend on the method
    if conv_rules:
        tkey += f"-{arm['label']}-{'+'.join(CONV_LAYERS[i] for i in sorted(conv_rules))}"
    got = cache.get(tkey)
    if got is None:
        feats = state
        if cfg["retrain_features"]:
            begin = state
            if method == "langevin-ranges":  # the layers start inside their ranges (the rules' arguments)
                for index, (_, _, (low, high)) in conv_rules.items():
                    begin = begin._replace(**{f"w{index + 1}": jnp.clip((state.w1, state.w2)[index], low, high)})
            feats = _train_features(loop, pipe, keys, begin, lat_t2[:n_stdp2], cfg["task2_epochs1"], cfg["task2_epochs2"],
                                    30, times, tkey, conv_rules)
        got = (feats, pipe.features(feats.w1, feats.w2, np.concatenate([lat_t2, lat_t1[n1:]])))
        if not conv_rules:  # shared by the other arms; an arm's own features are dropped after the arm
            cache[tkey] = got
    feats, lat2_all = got
    lat2_train2, lat2_test2, lat2_test1 = lat2_all[:, :n2], lat2_all[:, n2:n2 + len(yt2)], lat2_all[:, n2 + len(yt2):]
    E = cfg["task2_epochs3"]
    name = f"t2-{method}-{cfg['task2_adaptive_int']}-{cfg['noise_lr_std']}"
    pkey = f"arm{arm['index']}-task2-decision"

    def task2_epoch(e, carry):
        w3, st3, acc2, acc1 = carry
        (w3, st3, _), dt = P.timed(pipe.decision_epoch, loop.fold(keys, 33, e), w3, st3, lat2_train2, y2,
                                   make_rule=make, name=name, rule_args=args)
        times["decision"].append(round(dt, 3))
        acc2, acc1 = np.array(acc2), np.array(acc1)
        acc2[:, e] = pipe.evaluate(w3, lat2_test2, yt2).accuracy
        acc1[:, e] = pipe.evaluate(w3, lat2_test1, yt1).accuracy
        ctx.partial = RunResult(metrics={**partial_metrics, f"arm{arm['index']}_task2_accuracy": acc2[:, :e + 1],
                                         f"arm{arm['index']}_task1_accuracy": acc1[:, :e + 1]})
        return w3, st3, acc2, acc1

    w3, st3, acc2, acc1 = loop.phase(pkey, E, task2_epoch, (w3, st3, np.zeros((S, E)), np.zeros((S, E))),
                                     unit="task-2 epochs", report=lambda done: (arm["done"] + done, arm["total"]))
    acc2, acc1 = np.asarray(acc2), np.asarray(acc1)
    out.update(task2_accuracy=acc2, task1_accuracy=acc1, final_task2=acc2[:, -1], final_task1=acc1[:, -1],
               forgetting=acc_t1 - acc1[:, -1])
    if method == "freeze-largest":
        task2_weights = {"conv1": feats.w1, "conv2": feats.w2, "decision": w3}
        for layer, mask in masks.items():
            changed = jnp.where(mask, task2_weights[layer] != task1_weights[layer], False)
            out[_layer_metric(layer, "frozen_weights_changed")] = np.asarray(jnp.sum(changed.reshape(S, -1), axis=1))
    return out
