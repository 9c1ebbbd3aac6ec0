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


def test_pooled_difference_matches_the_stratified_normal_approximation():
  rng = np.random.default_rng(2)
  pairs = []
  for n, flip in ((400, 0.08), (600, 0.15), (500, 0.10)):
    a = rng.random(n) < 0.5
    b = a.copy()
    f = rng.random(n) < flip
    b[f] = ~b[f]
    b[: n // 20] = True  # arm b a little better
    pairs.append((a, b))
  got = stats.pooled_difference(pairs, resamples=8000)
  diffs = [b.astype(float) - a.astype(float) for a, b in pairs]
  n = sum(len(d) for d in diffs)
  mean = sum(d.sum() for d in diffs) / n
  # Var of the pooled mean when each seed's problems are redrawn within the seed.
  se = math.sqrt(sum((len(d) / n) ** 2 * d.var() / len(d) for d in diffs))
  assert got["n"] == n and got["seeds"] == 3
  assert got["difference"] == pytest.approx(mean)
  assert got["ci"][0] == pytest.approx(mean - 1.96 * se, abs=0.004)
  assert got["ci"][1] == pytest.approx(mean + 1.96 * se, abs=0.004)
  assert got["per_seed"] == pytest.approx([d.mean() for d in diffs])
  one = stats.pooled_difference(pairs[:1], seed=3)
  assert one["ci"] == pytest.approx(stats.paired_difference(*pairs[0], seed=3)["ci"], abs=0.004)
  with pytest.raises(ValueError, match="at least one seed"):
    stats.pooled_difference([])


def test_minimum_detectable_effect_by_hand_and_by_simulation():
  # (z_0.975 + z_0.8) * sqrt(0.2 / 500) = (1.959964 + 0.841621) * 0.02
  assert stats.minimum_detectable_effect(500, 0.2) == pytest.approx(0.0560317, abs=1e-6)
  # At that effect a paired comparison of 500 problems finds a difference ~80% of the time.
  rng = np.random.default_rng(4)
  mde, n, hits, reps = stats.minimum_detectable_effect(500, 0.2), 500, 0, 2000
  p_only_b, p_only_a = 0.1 + mde / 2, 0.1 - mde / 2
  for _ in range(reps):
    u = rng.random(n)
    d = (u < p_only_b).astype(float) - ((u >= p_only_b) & (u < p_only_b + p_only_a))
    half = 1.96 * d.std(ddof=1) / math.sqrt(n)
    hits += d.mean() - half > 0
  assert 0.76 < hits / reps < 0.86
  with pytest.raises(ValueError, match="n must be positive"):
    stats.minimum_detectable_effect(0, 0.1)


def test_compare_gives_the_row_of_an_ablation_table():
  a = np.array([1] * 40 + [0] * 60, bool)
  b = a.copy()
  b[40:70] = True  # 30 problems only b solves, none only a
  row = stats.compare(a, b)
  assert row["difference"] == pytest.approx(0.30) and row["n"] == 100
  assert row["mcnemar_p"] == pytest.approx(2 * 0.5 ** 30)
  assert row["verdict"] == "helps"
  assert stats.compare(b, a)["verdict"] == "hurts"
  c = a.copy()
  c[[0, 50]] = [False, True]  # one problem each way
  row = stats.compare(a, c)
  assert row["verdict"] == f"no effect detected at ±{stats.minimum_detectable_effect(100, 0.02):.3f}"


def test_compare_pooled_over_seeds():
  rng = np.random.default_rng(5)
  pairs = []
  for _ in range(3):
    a = rng.random(200) < 0.4
    b = a | (rng.random(200) < 0.15)  # b solves what a does, and more
    pairs.append((a, b))
  got = stats.compare_pooled(pairs)
  a = np.concatenate([x for x, _ in pairs])
  b = np.concatenate([y for _, y in pairs])
  assert got["n"] == 600 and got["seeds"] == 3
  assert got["difference"] == pytest.approx(b.mean() - a.mean())
  assert (got["a"], got["b"]) == (pytest.approx(a.mean()), pytest.approx(b.mean()))
  assert got["verdict"] == "helps" and got["ci"][0] > 0
  same = stats.compare_pooled([(a[:200], a[:200])])
  assert same["verdict"] == f"no effect detected at ±{stats.minimum_detectable_effect(200, 0):.3f}"


def test_fractional_outcomes_pair_like_binary_ones():
  # best-of-N accuracy averaged over sample subsets is a fraction per problem
  a = np.array([0.0, 0.5, 0.25, 1.0, 0.0, 0.75] * 50)
  b = np.array([0.5, 0.5, 0.75, 1.0, 0.25, 0.75] * 50)
  got = stats.compare_pooled([(a, b)])
  d = b - a
  assert got["difference"] == pytest.approx(d.mean())
  half = 1.96 * d.std() / math.sqrt(len(d))
  assert got["ci"] == pytest.approx([d.mean() - half, d.mean() + half], abs=0.006)
  assert got["mde"] == pytest.approx(stats.minimum_detectable_effect(len(d), np.mean(d ** 2)))
  assert got["verdict"] == "helps"
