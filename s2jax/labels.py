"""Step-label sources, registered by name (`labels.source` in a verifier config).

Every source turns (problem, candidate solution) pairs into TRL stepwise records:
  exact       the synthetic task's step checker (needs the generator's `meta`);
  annotation  the arithmetic of each step's `<<expr=value>>` (weak, works on real data);
  mc          Monte-Carlo rollouts (Math-Shepherd): from each step prefix the policy
              samples K completions; the step is good if any (hard) or the fraction (soft)
              of them reach the reference answer. Needs no human labels.
Corrupted reference solutions add invalid steps. A new source is one function:

  @register("name")
  def name(ctx: LabelContext) -> list[dict]: ...
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Iterable, Sequence

import numpy as np

from s2jax.data.steps import encode_with_steps
from s2jax.registry import Registry
from s2jax.sampling import SamplingConfig
from s2jax.tasks import arith

MC_MODES = ("hard", "soft")


@dataclasses.dataclass
class LabelContext:
  """What a label source sees: the task, (problem, solution) pairs that have steps, the
  `labels` config block, and `rollouts()`, the cached Monte-Carlo outcomes of those pairs
  (drawn only when a source asks)."""
  task: object
  pairs: list
  config: object
  rollouts: Callable[[], list]


_SOURCES = Registry("label source")
register, sources = _SOURCES.register, _SOURCES.names


def label(name: str, ctx: LabelContext) -> list:
  return _SOURCES.get(name)(ctx)


def exact_record(task, problem, solution: str) -> dict | None:
  """Stepwise record labelled by the task's checker (exact for the synthetic task, the
  annotations for GSM8K); None for a solution without steps."""
  steps, _ = task.split_steps(solution)
  if not steps:
    return None
  verdict = task.check(problem, solution)
  return {"prompt": problem.question, "completions": steps,
          "labels": [s.valid for s in verdict.steps]}


def annotation_record(task, question: str, solution: str) -> dict | None:
  """Stepwise record labelled by the arithmetic of each step's `<<expr=value>>` (weak)."""
  steps, _ = task.split_steps(solution)
  if not steps:
    return None
  verdict = arith.check_annotations(solution)
  return {"prompt": question, "completions": steps, "labels": [s.valid for s in verdict.steps]}


def rollout_outcomes(sampler, params, tokenizer, questions: Sequence[str],
                     step_lists: Sequence[Sequence[str]], answers: Sequence[float], *, k: int,
                     batch_size: int, max_new_tokens: int, sampling: SamplingConfig, rng,
                     extract_answer, batch_sharding=None, desc: str = "mc rollouts",
                     with_counts: bool = False):
  """For every solution, a [num_steps, k] bool array: did rollout j from the prefix that
  ends with step i reach the reference answer? All prefixes go through the sampler in
  fixed-size batches, so the cost is (total steps * k) completions. `with_counts` adds,
  per solution, the (prompt, generated) tokens of all its rollouts."""
  if k <= 0:
    raise ValueError(f"mc rollouts: k={k} must be positive")
  prompts, owner = [], []
  for n, (q, steps) in enumerate(zip(questions, step_lists)):
    ids, ends = encode_with_steps(tokenizer, q, steps)
    for i, end in enumerate(ends):
      prompts.extend([ids[:end + 1]] * k)
      owner.extend([(n, i)] * k)
  outs = sampler.generate_all(params, prompts, batch_size=batch_size,
                              max_new_tokens=max_new_tokens, rng=rng, sampling=sampling,
                              batch_sharding=batch_sharding, desc=desc)
  result = [np.zeros((len(steps), k), bool) for steps in step_lists]
  filled = [np.zeros(len(steps), int) for steps in step_lists]
  counts = [[0, 0] for _ in step_lists]
  for (n, i), prompt, (ids, _) in zip(owner, prompts, outs):
    got = extract_answer(tokenizer.decode(ids))
    result[n][i, filled[n][i]] = got is not None and got == answers[n]
    filled[n][i] += 1
    counts[n][0] += len(prompt)
    counts[n][1] += len(ids)
  return (result, [tuple(c) for c in counts]) if with_counts else result


def mc_record(question: str, steps: Sequence[str], outcomes: np.ndarray, k: int,
              mode: str = "hard") -> dict:
  """Stepwise record from the first `k` rollouts per step: hard = any reached the answer,
  soft = the fraction that did."""
  if mode not in MC_MODES:
    raise ValueError(f"mc label mode {mode!r} must be one of {MC_MODES}")
  if not 0 < k <= outcomes.shape[1]:
    raise ValueError(f"mc labels: k={k} but {outcomes.shape[1]} rollouts per step were made")
  o = outcomes[:, :k]
  labels = o.any(axis=1) if mode == "hard" else o.mean(axis=1)
  return {"prompt": question, "completions": list(steps),
          "labels": [bool(x) for x in labels] if mode == "hard" else [float(x) for x in labels]}


def corrupted_records(task, problems: Sequence, rng: np.random.Generator,
                      per_problem: int = 1, plan: bool = False, kinds=None) -> list:
  """Reference prefixes ending in one corrupted (invalid) step (`plan`: in the planned
  format, the plan line first; `kinds`: the task's kinds of error, None for its mix)."""
  out = []
  for p in problems:
    for _ in range(per_problem):
      steps, i, _ = task.corrupt(p, rng, plan=plan, kinds=kinds)
      out.append({"prompt": p.question, "completions": steps,
                  "labels": [True] * i + [False]})
  return out


def label_counts(records: Iterable[dict]) -> tuple[int, int]:
  """(valid steps, invalid steps); a soft label counts as valid from 0.5."""
  pos = neg = 0
  for r in records:
    pos += sum(float(x) >= 0.5 for x in r["labels"])
    neg += sum(float(x) < 0.5 for x in r["labels"])
  return pos, neg


def balance(records: Sequence[dict], rng: np.random.Generator) -> list:
  """Drop records made only of the majority label, at random, until valid and invalid
  step counts are as even as whole records allow; mixed records are always kept.

  (A strong policy's samples are mostly valid, a weak one's mostly invalid; either way the
  verifier should not learn the base rate.)"""
  pos, neg = label_counts(records)
  majority_valid = pos > neg
  order = rng.permutation(len(records))
  keep = np.ones(len(records), bool)
  for i in order:
    if (pos <= neg) if majority_valid else (neg <= pos):
      break
    labels = [bool(x >= 0.5) for x in records[i]["labels"]]
    n = len(labels)
    if majority_valid and all(labels) and pos - n >= neg:
      keep[i], pos = False, pos - n
    elif not majority_valid and not any(labels) and neg - n >= pos:
      keep[i], neg = False, neg - n
  return [r for r, k in zip(records, keep) if k]


@register("exact")
def exact_source(ctx: LabelContext) -> list:
  """The task's own step checker."""
  return [exact_record(ctx.task, p, t) for p, t in ctx.pairs]


@register("annotation")
def annotation_source(ctx: LabelContext) -> list:
  """The arithmetic of each step's calculator annotation (weak)."""
  return [annotation_record(ctx.task, p.question, t) for p, t in ctx.pairs]


@register("mc")
def mc_source(ctx: LabelContext) -> list:
  """Monte-Carlo rollouts from every step prefix (Math-Shepherd)."""
  c = ctx.config
  return [mc_record(p.question, ctx.task.split_steps(t)[0], o, c.mc_k, c.mc_mode)
          for (p, t), o in zip(ctx.pairs, ctx.rollouts())]

