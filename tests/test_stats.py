"""Paired comparisons (s2jax.stats) against hand-computed cases and a normal approximation."""
import math

import numpy as np
import pytest

from s2jax import stats


def test_mcnemar_exact_matches_the_binomial_by_hand():
  # 5 problems only arm a solves, 0 only arm b: p = 2 * (1/2)^5.
  a = [1] * 5 + [1, 0, 0]
  b = [0] * 5 + [1, 0, 0]
  got = stats.mcnemar_exact(a, b)
  assert (got["only_a"], got["only_b"]) == (5, 0)
  assert got["p_value"] == pytest.approx(2 * 0.5 ** 5)
  # 7 against 3: p = 2 * P(X <= 3), X ~ Binomial(10, 1/2) = 2 * 176 / 1024.
  a = [1] * 7 + [0] * 3
  b = [0] * 7 + [1] * 3
  assert stats.mcnemar_exact(a, b)["p_value"] == pytest.approx(2 * 176 / 1024)
  assert stats.mcnemar_exact([1, 0], [1, 0])["p_value"] == 1.0


def test_paired_bootstrap_interval_agrees_with_the_normal_approximation():
  rng = np.random.default_rng(1)
  a = rng.random(2000) < 0.30
  b = a.copy()
  flip = rng.random(2000) < 0.10
  b[flip] = ~b[flip]
  got = stats.paired_difference(a, b, resamples=4000)
  d = b.astype(float) - a.astype(float)
  half = 1.96 * d.std(ddof=1) / math.sqrt(len(d))
  assert got["difference"] == pytest.approx(d.mean())
  assert got["ci"][0] == pytest.approx(d.mean() - half, abs=0.003)
  assert got["ci"][1] == pytest.approx(d.mean() + half, abs=0.003)
  assert got["n"] == 2000


def test_verdict_comes_from_the_interval():
  assert stats.verdict([0.01, 0.05]) == "higher"
  assert stats.verdict([-0.05, -0.01]) == "lower"
  assert stats.verdict([-0.02, 0.04]) == "no difference detected (±0.040)"
  same = stats.paired_difference([1, 0, 0], [1, 0, 0])
  assert same["ci"] == [0.0, 0.0]
  assert stats.verdict(same["ci"]) == "no difference detected (same outcome on every problem)"
  with pytest.raises(ValueError, match="equal"):
    stats.paired_difference([1, 0], [1])
