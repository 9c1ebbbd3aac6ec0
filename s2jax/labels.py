"""Step-label sources that need no model: the exact checker and calculator annotations.

Both turn (problem, candidate solution) pairs into TRL stepwise records; corrupted
reference solutions add invalid steps. Monte-Carlo rollout labels, which need the policy,
build on the same record format.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from s2jax.tasks import arith


def exact_record(problem: arith.Problem, solution: str) -> dict | None:
  """Stepwise record labelled by the exact checker; None for a solution without steps."""
  steps, _ = arith.split_steps(solution)
  if not steps:
    return None
  verdict = arith.check_solution(problem, solution)
  return {"prompt": problem.question, "completions": steps,
          "labels": [s.valid for s in verdict.steps]}


def annotation_record(question: str, solution: str) -> dict | None:
  """Stepwise record labelled by the arithmetic of each step's `<<expr=value>>` (weak)."""
  steps, _ = arith.split_steps(solution)
  if not steps:
    return None
  verdict = arith.check_annotations(solution)
  return {"prompt": question, "completions": steps, "labels": [s.valid for s in verdict.steps]}


def corrupted_records(problems: Sequence[arith.Problem], rng: np.random.Generator,
                      per_problem: int = 1) -> list:
  """Reference prefixes ending in one corrupted (invalid) step."""
  out = []
  for p in problems:
    for _ in range(per_problem):
      steps, i, _ = arith.corrupt(p, rng)
      out.append({"prompt": p.question, "completions": steps,
                  "labels": [True] * i + [False]})
  return out


def label_counts(records: Iterable[dict]) -> tuple[int, int]:
  """(valid steps, invalid steps)."""
  pos = neg = 0
  for r in records:
    pos += sum(bool(x) for x in r["labels"])
    neg += sum(not bool(x) for x in r["labels"])
  return pos, neg


def balance(records: Sequence[dict], rng: np.random.Generator) -> list:
  """Drop records whose steps are all valid, at random, until valid and invalid step
  counts are as even as whole records allow; records with an invalid step are kept."""
  pos, neg = label_counts(records)
  order = rng.permutation(len(records))
  keep = np.ones(len(records), bool)
  for i in order:
    if pos <= neg:
      break
    r = records[i]
    if all(r["labels"]) and pos - len(r["labels"]) >= neg:
      keep[i] = False
      pos -= len(r["labels"])
  return [r for r, k in zip(records, keep) if k]
