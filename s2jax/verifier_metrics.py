"""How good a verifier is: ranking (AUROC), error detection, first-error localisation and
calibration, against reference labels (exact step labels on the synthetic task).

Scores are probabilities that a step (or solution) is correct; label 1 = correct.
"""
from __future__ import annotations

from typing import Sequence

import re

import numpy as np
from scipy.stats import rankdata


def auroc(scores, labels) -> float:
  """P(score of a random positive > score of a random negative), ties counting half
  (the Mann-Whitney statistic); nan when only one class is present."""
  scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
  pos, neg = int(labels.sum()), int((~labels).sum())
  if pos == 0 or neg == 0:
    return float("nan")
  ranks = rankdata(scores)
  return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def error_detection(scores, labels, threshold: float = 0.5) -> dict:
  """Precision and recall of flagging invalid steps (score < threshold)."""
  scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
  flagged, bad = scores < threshold, ~labels
  tp = int(np.sum(flagged & bad))
  return {"error_precision": tp / max(int(flagged.sum()), 1),
          "error_recall": tp / max(int(bad.sum()), 1),
          "accuracy": float(np.mean(flagged == bad)) if len(scores) else float("nan")}


def first_error_accuracy(step_scores: Sequence[Sequence[float]],
                         step_labels: Sequence[Sequence[bool]], threshold: float = 0.5) -> float:
  """Over solutions with at least one invalid step: how often the first step the verifier
  flags is exactly the first invalid step."""
  hits = total = 0
  for s, l in zip(step_scores, step_labels):
    l = np.asarray(l, bool)
    if l.all():
      continue
    total += 1
    flagged = np.flatnonzero(np.asarray(s) < threshold)
    hits += bool(len(flagged)) and flagged[0] == np.flatnonzero(~l)[0]
  return float(hits / total) if total else float("nan")


def reliability(scores, labels, bins: int = 10) -> dict:
  """Equal-width bins of predicted probability: mean prediction, observed frequency and
  count per non-empty bin, plus the expected calibration error."""
  scores, labels = np.asarray(scores, float), np.asarray(labels, float)
  which = np.minimum((scores * bins).astype(int), bins - 1)
  rows, ece = [], 0.0
  for b in range(bins):
    sel = which == b
    if not sel.any():
      continue
    conf, freq = float(scores[sel].mean()), float(labels[sel].mean())
    rows.append({"bin": b, "mean_score": conf, "frequency": freq, "count": int(sel.sum())})
    ece += sel.sum() / len(scores) * abs(conf - freq)
  return {"bins": rows, "ece": float(ece)}


def same_index_auroc(step_scores: Sequence[Sequence[float]],
                     step_labels: Sequence[Sequence[bool]]) -> float:
  """AUROC over pairs of a valid and an invalid step at the same step index (ties half).

  Later steps are invalid more often (an error spreads to the steps after it), so a
  verifier that only learned "deep steps are wrong" gets a good plain AUROC; this one is
  0.5 for it. nan when no index has both classes."""
  by_index: dict = {}
  for s, l in zip(step_scores, step_labels):
    for i, (x, y) in enumerate(zip(s, l)):
      by_index.setdefault(i, ([], []))[0 if y else 1].append(float(x))
  wins = pairs = 0.0
  for pos, neg in by_index.values():
    if pos and neg:
      a = auroc(pos + neg, [True] * len(pos) + [False] * len(neg))
      wins += a * len(pos) * len(neg)
      pairs += len(pos) * len(neg)
  return float(wins / pairs) if pairs else float("nan")


def error_kinds(step_reasons: Sequence[Sequence[str]], step_scores: Sequence[Sequence[float]],
                step_labels: Sequence[Sequence[bool]]) -> list:
  """Invalid steps grouped by the checker's reason with numbers and names blanked ("wrong
  relation: N is #+#, not #-#"), most common first: count, mean verifier score, and the
  AUROC of that kind against every valid step (how well the verifier catches it)."""
  valid = [float(x) for s, l in zip(step_scores, step_labels) for x, y in zip(s, l) if y]
  kinds: dict = {}
  for rs, s, l in zip(step_reasons, step_scores, step_labels):
    for r, x, y in zip(rs, s, l):
      if not y:
        kind = re.sub(r"\b[A-Z][a-z]+\b", "N", re.sub(r"\d+(\.\d+)?", "#", r))
        kinds.setdefault(kind, []).append(float(x))
  out = []
  for kind, xs in sorted(kinds.items(), key=lambda kv: -len(kv[1])):
    out.append({"kind": kind, "count": len(xs), "mean_score": float(np.mean(xs)),
                "auroc_vs_valid": auroc(valid + xs, [True] * len(valid) + [False] * len(xs))
                if valid else float("nan")})
  return out


def score_length_correlation(solution_scores: Sequence[float],
                             num_steps: Sequence[int]) -> dict:
  """Spearman correlation between a solution's verifier score and its number of steps (a
  verifier that penalises length ranks long chains low whatever their validity)."""
  from scipy.stats import spearmanr
  if len(solution_scores) < 3 or len(set(num_steps)) < 2:
    return {"spearman": float("nan"), "p_value": float("nan"), "n": len(solution_scores)}
  r = spearmanr(solution_scores, num_steps)
  return {"spearman": float(r.statistic), "p_value": float(r.pvalue),
          "n": len(solution_scores)}


def _solution_bootstrap(statistic, n_solutions: int, level: float, resamples: int,
                        seed: int) -> list[float]:
  """Percentile interval of statistic(solution indices) under resampling of whole
  solutions (scipy.stats.bootstrap): a solution's steps are not independent (an error
  spreads to the steps after it), so they are resampled together."""
  from scipy.stats import bootstrap
  res = bootstrap((np.arange(n_solutions),), lambda i: statistic(np.asarray(i, int)),
                  vectorized=False, n_resamples=resamples, confidence_level=level,
                  method="percentile", random_state=np.random.default_rng(seed))
  return [float(res.confidence_interval.low), float(res.confidence_interval.high)]


def _flat(step_lists, idx) -> np.ndarray:
  return np.concatenate([np.asarray(step_lists[k], float) for k in idx])


def auroc_interval(step_scores: Sequence[Sequence[float]],
                   step_labels: Sequence[Sequence[bool]], *, level: float = 0.95,
                   resamples: int = 2000, seed: int = 0) -> list[float]:
  """The step AUROC's interval, resampling solutions."""
  return _solution_bootstrap(
      lambda i: auroc(_flat(step_scores, i), _flat(step_labels, i).astype(bool)),
      len(step_scores), level, resamples, seed)


def auroc_difference(scores_a: Sequence[Sequence[float]], scores_b: Sequence[Sequence[float]],
                     step_labels: Sequence[Sequence[bool]], *, level: float = 0.95,
                     resamples: int = 2000, seed: int = 0) -> dict:
  """Step AUROC of verifier b minus verifier a on the same solutions' steps, with a paired
  interval (both verifiers' scores resampled together, by solution)."""
  if len(scores_a) != len(scores_b) or len(scores_a) != len(step_labels) or any(
      len(x) != len(y) for x, y in zip(scores_a, scores_b)):
    raise ValueError("auroc_difference: the two verifiers were not scored on the same "
                     "solutions and steps")

  def diff(i):
    labels = _flat(step_labels, i).astype(bool)
    return auroc(_flat(scores_b, i), labels) - auroc(_flat(scores_a, i), labels)
  every = np.arange(len(step_labels))
  labels = _flat(step_labels, every).astype(bool)
  a, b = auroc(_flat(scores_a, every), labels), auroc(_flat(scores_b, every), labels)
  return {"a": a, "b": b, "difference": b - a, "n_solutions": len(step_labels),
          "ci": _solution_bootstrap(diff, len(step_labels), level, resamples, seed),
          "level": level}


# An AUROC on fewer steps of either class than this is not reported: with a handful of
# valid steps its interval spans most of [0, 1].
MIN_CLASS_STEPS = 100


def step_report(step_scores: Sequence[Sequence[float]], step_labels: Sequence[Sequence[bool]],
                threshold: float = 0.5, min_class: int = MIN_CLASS_STEPS) -> dict:
  """Every step-level number the verifier issue asks for, from per-solution lists. The
  step AUROC is None unless both classes have at least `min_class` steps; the counts
  always come with it."""
  flat_s = np.concatenate([np.asarray(s, float) for s in step_scores]) if step_scores else []
  flat_l = np.concatenate([np.asarray(l, bool) for l in step_labels]) if step_labels else []
  valid = int(np.sum(flat_l))
  invalid = int(len(flat_l)) - valid
  enough = min(valid, invalid) >= min_class
  return {"steps": int(len(flat_s)), "valid_fraction": float(np.mean(flat_l)),
          "valid_steps": valid, "invalid_steps": invalid, "min_class_steps": min_class,
          "auroc": auroc(flat_s, flat_l) if enough else None,
          "auroc_ci": auroc_interval(step_scores, step_labels) if enough else None,
          "same_index_auroc": same_index_auroc(step_scores, step_labels) if enough else None,
          **error_detection(flat_s, flat_l, threshold),
          "first_error_accuracy": first_error_accuracy(step_scores, step_labels, threshold),
          "reliability": reliability(flat_s, flat_l)}


def label_agreement(labels, reference) -> dict:
  """How well (hard or soft, thresholded at 0.5) labels from one source match reference
  labels: agreement, and precision/recall of the invalid class."""
  got = np.asarray(labels, float) >= 0.5
  ref = np.asarray(reference, bool)
  out = error_detection(got.astype(float), ref, 0.5)
  return {"agreement": out["accuracy"], "invalid_precision": out["error_precision"],
          "invalid_recall": out["error_recall"]}


def plot_reliability(curves: dict, path: str, title: str = "Verifier calibration") -> None:
  """Reliability diagram: one line per named `reliability(...)` result."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(4.5, 4.5))
  ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
  for name, rel in curves.items():
    xs = [r["mean_score"] for r in rel["bins"]]
    ys = [r["frequency"] for r in rel["bins"]]
    ax.plot(xs, ys, marker="o", label=f"{name} (ECE {rel['ece']:.3f})")
  ax.set_xlabel("predicted P(correct)")
  ax.set_ylabel("observed fraction correct")
  ax.set_xlim(0, 1), ax.set_ylim(0, 1)
  ax.set_title(title)
  ax.legend(fontsize=7, loc="upper left")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def describe_auroc(report: dict) -> str:
  """The step AUROC with its class counts, or why there is none."""
  valid, invalid = report.get("valid_steps"), report.get("invalid_steps")
  if valid is None:  # a report written before the counts were kept
    return "" if report.get("auroc") is None else f"{report['auroc']:.3f}"
  if report.get("auroc") is None:
    small, n = ("valid", valid) if (valid or 0) <= (invalid or 0) else ("invalid", invalid)
    return f"too few {small} steps (n={n})"
  ci = report.get("auroc_ci")
  ci = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
  return f"{report['auroc']:.3f}{ci} (valid {valid}, invalid {invalid})"



# ----------------------------------------------------------------------------- ranking
# What search uses: best-of-N picks among samples of ONE problem, so a verifier is judged
# by how it orders a problem's correct samples above its wrong ones. A pooled AUROC also
# rewards telling easy problems from hard ones, which no search can use.

def _problem_groups(problems: Sequence) -> dict:
  groups: dict = {}
  for i, p in enumerate(problems):
    groups.setdefault(p, []).append(i)
  return groups


def within_problem_pairs(scores, correct, problems, texts=None) -> dict:
  """Per problem with both outcomes: the number of (correct, wrong) sample pairs and the
  pairs the correct sample wins (score higher; a tie counts half). With `texts`, a sample
  drawn more than once counts once (distinct (problem, text))."""
  scores, correct = np.asarray(scores, float), np.asarray(correct, bool)
  if not (len(scores) == len(correct) == len(problems)) or (
      texts is not None and len(texts) != len(scores)):
    raise ValueError(f"within_problem_pairs: {len(scores)} scores, {len(correct)} outcomes, "
                     f"{len(problems)} problem ids" + ("" if texts is None else
                                                      f", {len(texts)} texts"))
  wins, pairs, ids = [], [], []
  for p, idx in _problem_groups(problems).items():
    if texts is not None:
      first: dict = {}
      for i in idx:
        first.setdefault(texts[i], i)
      idx = list(first.values())
    c = correct[idx]
    pos, neg = int(c.sum()), int((~c).sum())
    if pos and neg:
      wins.append(auroc(scores[idx], c) * pos * neg)
      pairs.append(pos * neg)
      ids.append(p)
  return {"problems": ids, "wins": np.asarray(wins, float), "pairs": np.asarray(pairs, float)}


def within_problem_auroc(scores, correct, problems, texts=None, *, level: float = 0.95,
                         resamples: int = 2000, seed: int = 0) -> dict:
  """P(a correct sample scores above a wrong sample of the same problem), ties half,
  over every such pair; its percentile bootstrap interval resamples problems (a
  problem's pairs share samples, so they are resampled together). `texts`: on distinct
  texts only. nan with no problem of both outcomes."""
  from scipy.stats import bootstrap
  got = within_problem_pairs(scores, correct, problems, texts)
  w, n = got["wins"], got["pairs"]
  out = {"pairs": int(n.sum()), "problems": len(n), "level": level}
  if not len(n):
    return {**out, "auroc": float("nan"), "ci": [float("nan"), float("nan")]}
  out["auroc"] = float(w.sum() / n.sum())
  if len(n) < 2:
    out["ci"] = [out["auroc"], out["auroc"]]
    return out
  res = bootstrap((w, n), lambda a, b, axis: a.sum(axis) / b.sum(axis), paired=True,
                  vectorized=True, n_resamples=resamples, confidence_level=level,
                  method="percentile", random_state=np.random.default_rng(seed))
  out["ci"] = [float(res.confidence_interval.low), float(res.confidence_interval.high)]
  return out


def problem_mean_auroc(scores, correct, problems) -> float:
  """The pooled solution AUROC when every sample gets its problem's mean score: how much
  of a pooled AUROC telling problems apart alone reaches."""
  scores = np.asarray(scores, float)
  mean = np.empty_like(scores)
  for idx in _problem_groups(problems).values():
    mean[idx] = scores[idx].mean()
  return auroc(mean, correct)


def process_bench(step_scores: Sequence[Sequence[float]], step_labels: Sequence[Sequence[bool]],
                  threshold: float = 0.5) -> dict:
  """ProcessBench's measure against exact step labels: on chains with an invalid step, how
  often the first step the verifier flags (score < threshold) is the first invalid one
  (`first_error_accuracy`); on chains whose every step is valid, how often it flags none;
  F1 is their harmonic mean."""
  valid_chains = [(s, l) for s, l in zip(step_scores, step_labels) if np.all(l)]
  erroneous = first_error_accuracy(step_scores, step_labels, threshold)
  correct = (float(np.mean([not np.any(np.asarray(s, float) < threshold)
                            for s, _ in valid_chains])) if valid_chains else float("nan"))
  if np.isnan(erroneous) or np.isnan(correct):
    f1 = float("nan")  # one kind of chain is missing: no harmonic mean
  else:
    f1 = 2 * erroneous * correct / (erroneous + correct) if erroneous + correct else 0.0
  return {"first_error_accuracy": erroneous, "valid_chain_accuracy": correct, "f1": float(f1),
          "erroneous_chains": len(step_scores) - len(valid_chains),
          "valid_chains": len(valid_chains)}
