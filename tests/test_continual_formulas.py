"""The continual-learning formulas behind the documented figures: forgetting and forgetting reduction.

``forgetting = task1_after_task1 − final_task1`` (points; positive = forgot) and, per method arm,
``forgetting_reduction = baseline forgetting / method forgetting`` on the same seed (NaN where the method
forgets nothing). Checked by hand on the per-seed numbers of docs/reproductions/method1.md (whose
ratio of means is the documented 3.96×); ``tests/test_golden.py`` checks the same relations between
the metrics of a fresh tiny run.
"""

from __future__ import annotations

import numpy as np
import pytest

from snnjax_plugins.experiments.continual import arm_metrics

# docs/reproductions/method1.md, 8 seeds: forgetting of the baseline and of freeze-largest (points)
BASELINE_FORGETTING = np.array([7.2, 6.8, 11.0, 9.2, 8.4, 6.8, 11.2, 9.8])
FREEZE_FORGETTING = np.array([-1.6, 3.4, 4.2, 1.0, 4.2, 2.4, 3.2, 1.0])


def _arm_result(forgetting, after_task1=90.0):
    final = after_task1 - forgetting
    return {"task1_after_task1": np.full_like(forgetting, after_task1), "task2_accuracy": final[:, None],
            "task1_accuracy": final[:, None], "final_task2": final, "final_task1": final, "forgetting": forgetting}


def test_forgetting_reduction_by_hand_on_the_documented_seeds():
    arms = [{"is_baseline": True, "label": "baseline"}, {"is_baseline": False, "label": "freeze-largest"}]
    m = arm_metrics(arms, [_arm_result(BASELINE_FORGETTING), _arm_result(FREEZE_FORGETTING)])
    red = m["forgetting_reduction"]
    assert np.isnan(red[0])  # seed 0 did not forget under the method: no ratio
    np.testing.assert_allclose(red[1:], BASELINE_FORGETTING[1:] / FREEZE_FORGETTING[1:], rtol=1e-12)
    np.testing.assert_allclose(red[1:], [2.0, 11.0 / 4.2, 9.2, 2.0, 6.8 / 2.4, 3.5, 9.8], rtol=1e-12)
    assert np.nanmin(red) == pytest.approx(2.0) and np.nanmax(red) == pytest.approx(9.8)
    assert np.nanmedian(red) == pytest.approx(2.83, abs=0.01)  # the page: median 2.8×
    # the headline: ratio of the mean forgetting, 8.8 / 2.2 = 3.96×
    ratio = m["baseline_forgetting"].mean() / m["forgetting"].mean()
    assert m["baseline_forgetting"].mean() == pytest.approx(8.8) and m["forgetting"].mean() == pytest.approx(2.225)
    assert round(ratio, 2) == 3.96
    # a single method arm: unprefixed names; the baseline's under baseline_
    np.testing.assert_array_equal(m["baseline_forgetting"], BASELINE_FORGETTING)
    np.testing.assert_array_equal(m["forgetting"], FREEZE_FORGETTING)


def test_several_arms_get_prefixed_reductions_against_the_same_baseline():
    arms = [{"is_baseline": True, "label": "baseline"}, {"is_baseline": False, "label": "a"},
            {"is_baseline": False, "label": "b"}]
    base, a, b = np.array([10.0, 4.0]), np.array([5.0, 8.0]), np.array([0.0, 2.0])
    m = arm_metrics(arms, [_arm_result(base), _arm_result(a), _arm_result(b)])
    np.testing.assert_allclose(m["a:forgetting_reduction"], [2.0, 0.5])
    np.testing.assert_array_equal(np.isnan(m["b:forgetting_reduction"]), [True, False])
    assert m["b:forgetting_reduction"][1] == pytest.approx(2.0)
    assert "forgetting_reduction" not in m and "baseline_forgetting_reduction" not in m
