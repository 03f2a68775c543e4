"""Metric functions against hand computations."""

import math

import numpy as np
import pytest

from forecasts import metrics


def test_wape_mape_smape_bias_by_hand():
    a = [100.0, 200.0, 0.0, 50.0]
    f = [110.0, 150.0, 10.0, 50.0]
    # |e| = 10, 50, 10, 0 -> sum 70; sum|a| = 350
    assert metrics.wape(a, f) == pytest.approx(70 / 350)
    # MAPE skips a = 0: (10/100 + 50/200 + 0/50) / 3
    assert metrics.mape(a, f) == pytest.approx((0.1 + 0.25 + 0.0) / 3)
    # sMAPE terms: 200*10/210, 200*50/350, 200*10/10, 0
    expected = (200 * 10 / 210 + 200 * 50 / 350 + 200.0 + 0.0) / 4
    assert metrics.smape(a, f) == pytest.approx(expected)
    # bias = sum(f - a) / sum|a| = (10 - 50 + 10 + 0) / 350
    assert metrics.bias(a, f) == pytest.approx(-30 / 350)


def test_smape_zero_zero_counts_as_zero_and_empty_is_nan():
    assert metrics.smape([0.0, 10.0], [0.0, 10.0]) == 0.0
    assert math.isnan(metrics.smape([], []))
    assert math.isnan(metrics.wape([0.0], [1.0]))


def test_mase_uses_in_sample_seasonal_naive_scale():
    train = np.array([1.0, 2.0, 3.0, 5.0, 4.0, 6.0])
    # lag 2: |3-1|, |5-2|, |4-3|, |6-5| = 2, 3, 1, 1 -> mean 1.75
    assert metrics.seasonal_naive_scale(train, 2) == pytest.approx(1.75)
    # too short for lag 12 -> lag 1: 1,1,2,1,2 -> 1.4
    assert metrics.seasonal_naive_scale(train, 12) == pytest.approx(1.4)
    assert metrics.mase([10.0, 12.0], [11.0, 9.0], 1.75) == pytest.approx(2.0 / 1.75)


def test_coverage_inclusive_bounds():
    assert metrics.coverage([1, 2, 3, 4], [0, 2, 4, 0], [1, 3, 5, 3]) == pytest.approx(0.5)
