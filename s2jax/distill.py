"""Which of the policy's own samples a self-distillation round keeps (STaR / ReST-EM /
rejection-sampling fine-tuning), as masks over a [problems, samples] grid.

  prm_threshold  solution score (PRM step scores, aggregated) >= threshold
  prm_topk       the k best-scored samples of every problem
  correct        the final answer matches the reference (STaR; needs no verifier)
  random         as many samples as another filter keeps, chosen uniformly (the control)
  all            every sample (plain self-training)
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

FILTERS = ("prm_threshold", "prm_topk", "correct", "random", "all")


def keep_threshold(scores: np.ndarray, threshold: float) -> np.ndarray:
  return np.asarray(scores) >= threshold


def keep_top_k(scores: np.ndarray, k: int) -> np.ndarray:
  """The k highest scores of every row (ties broken by sample order)."""
  scores = np.asarray(scores)
  if k <= 0:
    raise ValueError(f"distill: top_k={k} must be positive")
  order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
  mask = np.zeros(scores.shape, bool)
  np.put_along_axis(mask, order, True, axis=1)
  return mask


def keep_random(shape: tuple, count: int, rng: np.random.Generator) -> np.ndarray:
  """Exactly `count` cells of the grid, uniformly without replacement."""
  total = int(np.prod(shape))
  if not 0 <= count <= total:
    raise ValueError(f"distill: cannot keep {count} of {total} samples")
  mask = np.zeros(total, bool)
  mask[rng.choice(total, size=count, replace=False)] = True
  return mask.reshape(shape)


def select(kind: str, *, scores: np.ndarray | None, correct: np.ndarray,
           rng: np.random.Generator, threshold: float = 0.5, top_k: int = 1,
           match: str = "prm_topk", size_of: str = "") -> np.ndarray:
  """The keep mask of filter `kind` over a [problems, samples] grid. `random` keeps as
  many samples as filter `match` would on the same grid. `size_of` names a filter whose
  count caps this one's (a uniform subset of the kept cells), so that filters compare at
  matched data size; a filter that keeps fewer stays as it is."""
  mask = _select(kind, scores=scores, correct=correct, rng=rng, threshold=threshold,
                 top_k=top_k, match=match)
  if size_of:
    count = int(_select(size_of, scores=scores, correct=correct, rng=rng, threshold=threshold,
                        top_k=top_k, match=match).sum())
    mask = cap(mask, count, rng)
  return mask


def cap(mask: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
  """At most `count` of the kept cells, chosen uniformly."""
  kept = np.flatnonzero(mask)
  if len(kept) <= count:
    return mask.copy()
  out = np.zeros(mask.size, bool)
  out[rng.choice(kept, size=count, replace=False)] = True
  return out.reshape(mask.shape)


def _select(kind: str, *, scores, correct, rng, threshold, top_k, match) -> np.ndarray:
  if kind not in FILTERS:
    raise ValueError(f"distill: filter {kind!r} must be one of {FILTERS}")
  correct = np.asarray(correct, bool)
  if kind.startswith("prm") and scores is None:
    raise ValueError(f"distill: filter {kind!r} needs verifier scores (set prm_workdir)")
  if kind == "prm_threshold":
    return keep_threshold(scores, threshold)
  if kind == "prm_topk":
    return keep_top_k(scores, top_k)
  if kind == "correct":
    return correct.copy()
  if kind == "all":
    return np.ones(correct.shape, bool)
  if match == "random":
    raise ValueError("distill: the random filter cannot match its own count")
  count = int(_select(match, scores=scores, correct=correct, rng=rng, threshold=threshold,
                      top_k=top_k, match=match).sum())
  return keep_random(correct.shape, count, rng)


def kept_stats(mask: np.ndarray, texts: Sequence[Sequence[str]], correct: np.ndarray,
               step_valid: Sequence[Sequence[Sequence[bool]]]) -> dict:
  """What a filter kept: how many samples, how many distinct correct solutions per
  problem, and how many of the kept steps the exact checker accepts."""
  mask = np.asarray(mask, bool)
  unique = [len({t for t, k, c in zip(ts, ks, cs) if k and c})
            for ts, ks, cs in zip(texts, mask, correct)]
  steps = [v for row, ks in zip(step_valid, mask) for sv, k in zip(row, ks) if k for v in sv]
  return {"kept": int(mask.sum()), "kept_fraction": float(mask.mean()),
          "kept_correct_fraction": float(np.asarray(correct)[mask].mean()) if mask.any() else 0.0,
          "unique_correct_per_problem": float(np.mean(unique)),
          "kept_step_validity": float(np.mean(steps)) if steps else 0.0,
          "problems_with_kept": int(mask.any(axis=1).sum())}
