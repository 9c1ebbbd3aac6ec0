"""Greedy evaluation on GSM8K-format records with step verdicts, judged by the task
(s2jax.tasks: the synthetic task's exact step checker, or GSM8K's reference answer and
calculator annotations)."""
from __future__ import annotations

import collections
from typing import Sequence

import numpy as np

from s2jax.data import prompts
from s2jax.data.batches import encode_prompt
from s2jax.sampling import SamplingConfig


def judge(task, record: dict, output: str) -> dict:
  problem = task.from_json(record)
  verdict = task.check(problem, output)
  correct = verdict.answer_correct
  return {"question": record["question"], "reference": record["answer"], "output": output,
          "answer": verdict.answer, "correct": bool(correct),
          "fully_valid": bool(verdict.steps) and verdict.all_steps_valid and bool(correct),
          "steps": [{"text": s.text, "valid": s.valid, "reason": s.reason} for s in verdict.steps],
          "num_steps": problem.num_steps,
          "checker": task.checker}


def summarize(results: Sequence[dict]) -> dict:
  by = collections.defaultdict(list)
  for r in results:
    by[r["num_steps"]].append(r)

  def stats(rs):
    return {"n": len(rs), "accuracy": float(np.mean([r["correct"] for r in rs])),
            "fully_valid": float(np.mean([r["fully_valid"] for r in rs]))}
  out = stats(results)
  out["by_num_steps"] = {str(k): stats(v) for k, v in sorted(by.items())}
  # Problem by problem, in the split's order, so two policies graded on the same problems
  # can be compared pairwise (s2jax.stats).
  out["per_problem"] = {"correct": [int(r["correct"]) for r in results],
                        "fully_valid": [int(r["fully_valid"]) for r in results]}
  return out


def generate_solutions(sampler, params, tokenizer, questions: Sequence[str], *,
                       batch_size: int, max_new_tokens: int,
                       sampling: SamplingConfig = SamplingConfig(), rng=None,
                       desc: str = "generate", batch_sharding=None,
                       with_counts: bool = False):
  """Solution texts, one per question; `with_counts` adds each row's (prompt tokens,
  generated tokens), what compute accounting counts."""
  fmt = prompts.prompt_format(tokenizer)
  prefix = fmt.shared_prefix(tokenizer)
  ids = [encode_prompt(tokenizer, q) for q in questions]
  if prefix and all(i[:len(prefix)] == prefix for i in ids):
    ids = [i[len(prefix):] for i in ids]  # the exemplars are computed once per batch
  else:
    prefix = []
  outs = sampler.generate_all(params, ids, batch_size=batch_size, max_new_tokens=max_new_tokens,
                              rng=rng, sampling=sampling, batch_sharding=batch_sharding,
                              desc=desc, stop_ids=fmt.stop_ids(tokenizer), prefix=prefix)
  texts = [fmt.cut(tokenizer.decode(ids)) for ids, _ in outs]
  if not with_counts:
    return texts
  return texts, [(len(prefix) + len(i), len(o)) for i, (o, _) in zip(ids, outs)]


def evaluate_records(sampler, params, tokenizer, records: Sequence[dict], *, task,
                     batch_size: int, max_new_tokens: int, desc: str = "eval",
                     batch_sharding=None):
  outputs = generate_solutions(sampler, params, tokenizer, [r["question"] for r in records],
                               batch_size=batch_size, max_new_tokens=max_new_tokens, desc=desc,
                               batch_sharding=batch_sharding)
  results = [judge(task, r, o) for r, o in zip(records, outputs)]
  return results, summarize(results)


def evaluate_splits(sampler, params, tokenizer, split_records: dict, *, task, batch_size: int,
                    max_new_tokens: int, batch_sharding=None) -> tuple[dict, dict]:
  """Greedy accuracy on several named splits → ({split: summary}, {split: per-problem})."""
  summaries, per_problem = {}, {}
  for name, records in split_records.items():
    per_problem[name], summaries[name] = evaluate_records(
        sampler, params, tokenizer, records, task=task, batch_size=batch_size,
        max_new_tokens=max_new_tokens, desc=f"eval {name}", batch_sharding=batch_sharding)
  return summaries, per_problem
