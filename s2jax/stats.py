"""Statistics for comparing policies: interval estimates and paired tests on the same
problems. Every comparison in results/ goes through here, so a verdict word comes from an
interval computed in code, never from eyeballing two means."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import stats as sps

from s2jax.metrics import wilson_interval

__all__ = ["wilson_interval", "mcnemar_exact", "paired_difference", "pooled_difference",
           "minimum_detectable_effect", "verdict", "compare", "compare_pooled"]


def _paired(a: Sequence[float], b: Sequence[float], dtype=float) -> tuple[np.ndarray,
                                                                          np.ndarray]:
  """Two arms' per-problem outcomes as arrays: 0/1, or a fraction such as a best-of-N
  accuracy averaged over sample subsets."""
  a, b = np.asarray(a, dtype), np.asarray(b, dtype)
  if a.shape != b.shape or a.ndim != 1 or not len(a):
    raise ValueError(f"paired outcomes need two equal, non-empty 1-D lists; got {a.shape} "
                     f"and {b.shape}")
  return a, b


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> dict:
  """Exact McNemar test of two arms' per-problem correctness on the same problems: under
  no difference, the discordant problems split Binomial(n_discordant, 1/2)."""
  a, b = _paired(a, b, bool)
  only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
  n = only_a + only_b
  p = 1.0 if n == 0 else float(sps.binomtest(only_a, n, 0.5).pvalue)
  return {"only_a": only_a, "only_b": only_b, "p_value": p}


def paired_difference(a: Sequence[bool], b: Sequence[bool], *, level: float = 0.95,
                      resamples: int = 10000, seed: int = 0) -> dict:
  """Accuracy of arm b minus arm a on the same problems, with a percentile paired
  bootstrap interval (problems resampled, both arms kept together) and n: the one-seed
  case of `pooled_difference`."""
  a, b = _paired(a, b)
  d = pooled_difference([(a, b)], level=level, resamples=resamples, seed=seed)
  return {"n": d["n"], "a": float(a.mean()), "b": float(b.mean()),
          "difference": d["difference"], "ci": d["ci"], "level": level}


def verdict(ci: Sequence[float], better: str = "higher", worse: str = "lower") -> str:
  """The word an interval allows: `better` when it lies above 0, `worse` below, and
  otherwise "no difference detected" with the interval's half-width as the smallest
  effect the comparison could have seen."""
  lo, hi = ci
  if lo > 0:
    return better
  if hi < 0:
    return worse
  if lo == hi == 0:  # the bootstrap never saw a discordant problem
    return "no difference detected (same outcome on every problem)"
  return f"no difference detected (±{max(-lo, hi):.3f})"


def pooled_difference(pairs: Sequence[tuple[Sequence[bool], Sequence[bool]]], *,
                      level: float = 0.95, resamples: int = 10000, seed: int = 0) -> dict:
  """Arm b minus arm a pooled over seeds: `pairs` holds one (a, b) per seed, each on that
  seed's problems. Stratified bootstrap: every resample redraws each seed's problems (both
  arms together) within that seed, so the interval keeps the design's seeds and sizes.
  The pooled difference weighs seeds by their problem counts."""
  diffs = []
  for a, b in pairs:
    a, b = _paired(a, b)
    diffs.append(b - a)
  if not diffs:
    raise ValueError("pooled_difference needs at least one seed")
  n = sum(len(d) for d in diffs)
  rng = np.random.default_rng(seed)
  boot = np.zeros(resamples)
  for d in diffs:
    idx = rng.integers(0, len(d), size=(resamples, len(d)))
    boot += d[idx].sum(axis=1)
  boot /= n
  alpha = (1 - level) / 2
  lo, hi = np.quantile(boot, [alpha, 1 - alpha])
  per_seed = [float(d.mean()) for d in diffs]
  return {"n": int(n), "seeds": len(diffs), "difference": float(sum(d.sum() for d in diffs) / n),
          "per_seed": per_seed, "ci": [float(lo), float(hi)], "level": level}


def minimum_detectable_effect(n: int, discordant_rate: float, *, level: float = 0.95,
                              power: float = 0.8) -> float:
  """The smallest accuracy difference a paired comparison of `n` problems detects with
  the given power at a two-sided `level`, when a fraction `discordant_rate` of problems
  is solved by exactly one arm (normal approximation: the difference's standard error
  under no effect is sqrt(discordant_rate / n))."""
  if n <= 0:
    raise ValueError(f"minimum_detectable_effect: n must be positive, got {n}")
  z = sps.norm.ppf(1 - (1 - level) / 2) + sps.norm.ppf(power)
  return float(z * np.sqrt(max(discordant_rate, 1.0 / n) / n))


def compare(a: Sequence[bool], b: Sequence[bool], *, better: str = "helps",
            worse: str = "hurts", level: float = 0.95, seed: int = 0) -> dict:
  """Everything an ablation table row needs for arm b against baseline a on the same
  problems: `compare_pooled` on one seed (both accuracies, the difference with its
  bootstrap interval, n, the smallest effect this n could detect, the verdict from the
  interval) and the exact McNemar p."""
  row = compare_pooled([(a, b)], better=better, worse=worse, level=level, seed=seed)
  return {**row, "mcnemar_p": mcnemar_exact(a, b)["p_value"]}


def compare_pooled(pairs: Sequence[tuple[Sequence[float], Sequence[float]]], *,
                   better: str = "helps", worse: str = "hurts", level: float = 0.95,
                   seed: int = 0) -> dict:
  """One table row for arm b against baseline a over seeds, one (a, b) pair of
  per-problem outcomes per seed (0/1, or fractions such as best-of-N accuracy over sample
  subsets): both accuracies, the pooled difference with its stratified bootstrap
  interval, the smallest effect the pooled n could detect, and the verdict from the
  interval."""
  pooled = pooled_difference(pairs, level=level, seed=seed)
  a = np.concatenate([np.asarray(x, float) for x, _ in pairs])
  b = np.concatenate([np.asarray(y, float) for _, y in pairs])
  # mean squared difference: the discordant fraction for 0/1 outcomes
  mde = minimum_detectable_effect(pooled["n"], float(np.mean((b - a) ** 2)), level=level)
  word = verdict(pooled["ci"], better, worse)
  if word.startswith("no difference"):
    word = f"no effect detected at ±{mde:.3f}"
  return {**pooled, "a": float(a.mean()), "b": float(b.mean()), "mde": mde, "verdict": word}
