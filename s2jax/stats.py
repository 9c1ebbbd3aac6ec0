"""Statistics for comparing policies: interval estimates and paired tests on the same
problems. Every comparison in results/ goes through here, so a verdict word comes from an
interval computed in code, never from eyeballing two means."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import stats as sps

from s2jax.metrics import wilson_interval

__all__ = ["wilson_interval", "mcnemar_exact", "paired_difference", "verdict"]


def _paired(a: Sequence[bool], b: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
  a, b = np.asarray(a, bool), np.asarray(b, bool)
  if a.shape != b.shape or a.ndim != 1 or not len(a):
    raise ValueError(f"paired outcomes need two equal, non-empty 1-D lists; got {a.shape} "
                     f"and {b.shape}")
  return a, b


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> dict:
  """Exact McNemar test of two arms' per-problem correctness on the same problems: under
  no difference, the discordant problems split Binomial(n_discordant, 1/2)."""
  a, b = _paired(a, b)
  only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
  n = only_a + only_b
  p = 1.0 if n == 0 else float(sps.binomtest(only_a, n, 0.5).pvalue)
  return {"only_a": only_a, "only_b": only_b, "p_value": p}


def paired_difference(a: Sequence[bool], b: Sequence[bool], *, level: float = 0.95,
                      resamples: int = 10000, seed: int = 0) -> dict:
  """Accuracy of arm b minus arm a on the same problems, with a percentile paired
  bootstrap interval (problems resampled, both arms kept together) and n."""
  a, b = _paired(a, b)
  d = b.astype(float) - a.astype(float)
  rng = np.random.default_rng(seed)
  idx = rng.integers(0, len(d), size=(resamples, len(d)))
  boot = d[idx].mean(axis=1)
  alpha = (1 - level) / 2
  lo, hi = np.quantile(boot, [alpha, 1 - alpha])
  return {"n": int(len(d)), "a": float(a.mean()), "b": float(b.mean()),
          "difference": float(d.mean()), "ci": [float(lo), float(hi)], "level": level}


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
