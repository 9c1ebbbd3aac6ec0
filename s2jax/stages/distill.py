"""Verifier-filtered self-distillation: rounds of sample → filter → fine-tune → evaluate.

  python experiments/self_distill.py --config=configs/distill_arith.py \
      --config.policy_workdir=workdirs/sft --config.prm_workdir=workdirs/prm \
      --workdir=workdirs/distill/prm_topk

Round r samples `samples.per_problem` solutions for each of `samples.problems` training
problems with the round r-1 policy (round 0 = the SFT policy), keeps the ones the filter
selects (`s2jax.distill`: PRM threshold or top-k, answer correctness, or a random subset
of the same size as another filter's), fine-tunes on them (from the SFT weights or from the
previous round, `finetune.init`) and evaluates greedy accuracy on every split. Each round is
a policy workdir (<workdir>/round_<r>) that search, RL or the next round can load; a
finished round is skipped on re-run, an unfinished one resumes from its checkpoint.
<workdir>/rounds.json holds the per-round log.
"""
from __future__ import annotations

import json
import os


import jax
import numpy as np
from absl import logging

from s2jax import compute, distill, report, search, sharding, verifier, workdirs
from s2jax import train as train_lib
from s2jax.config import require, validate_optim_config
from s2jax.data import batches, jsonl
from s2jax.metrics import MetricWriter
from s2jax.policy import Policy
from s2jax.sampling import SamplingConfig

INITS = ("base", "continue")


def needs_scores(f) -> bool:
  return (f.kind.startswith("prm") or (f.kind == "random" and f.match.startswith("prm"))
          or f.get("size_of", "").startswith("prm"))


def validate(config) -> None:
  require(bool(config.policy_workdir), "policy_workdir", config.policy_workdir,
          "must name the SFT workdir to distill from")
  f = config.filter
  require(f.kind in distill.FILTERS, "filter.kind", f.kind, f"must be one of {distill.FILTERS}")
  require(f.kind != "random" or f.match in distill.FILTERS and f.match != "random",
          "filter.match", f.match, "must name the (non-random) filter whose count to match")
  require(f.get("size_of", "") in ("",) + distill.FILTERS and f.get("size_of") != "random",
          "filter.size_of", f.get("size_of"),
          "must be '' or the (non-random) filter whose count caps this one's")
  require(not needs_scores(f) or bool(config.prm_workdir), "prm_workdir", config.prm_workdir,
          f"is needed by filter.kind={f.kind!r} (filter.match={f.match!r})")
  require(f.aggregation in search.AGGREGATIONS, "filter.aggregation", f.aggregation,
          f"must be one of {search.AGGREGATIONS}")
  require(config.finetune.init in INITS, "finetune.init", config.finetune.init,
          f"must be one of {INITS}")
  require(config.rounds >= 1, "rounds", config.rounds, "must be >= 1")
  validate_optim_config(config)


def evaluate(policy: Policy, config) -> dict:
  e = config.eval
  return policy.evaluate(num_problems=e.num_problems, batch_size=e.batch_size,
                         max_new_tokens=e.max_new_tokens, max_cache_len=e.max_cache_len)


def solution_scores(policy: Policy, prm_workdir: str, texts: list, questions: list,
                    config) -> np.ndarray:
  """Aggregated PRM scores of every sample, cached next to the samples."""
  path = policy.cache_path("prm_scores", prm=os.path.abspath(prm_workdir),
                           samples=[config.seed, config.samples.to_dict()],
                           how=config.filter.aggregation)
  if os.path.exists(path):
    return np.asarray(jsonl.read_jsonl(path, lambda r, where: r["score"], what="scores"))
  scorer = verifier.Scorer.from_workdir(prm_workdir, config.score_batch_size)
  steps = scorer.step_scores(questions, [policy.task.split_steps(t)[0] for t in texts])
  scores = np.asarray([search.aggregate(s, config.filter.aggregation) for s in steps],
                      np.float32)
  if jax.process_index() == 0:
    jsonl.write_jsonl(path, ({"score": float(s)} for s in scores))
  return scores


def select_samples(policy: Policy, config, round_seed: int) -> tuple[list, dict]:
  """(examples to fine-tune on, statistics) from the policy's samples on train problems."""
  s, f = config.samples, config.filter
  recs = policy.samples("train", s.problems, s.per_problem, seed=round_seed,
                        sampling=SamplingConfig(s.temperature), batch_size=s.batch_size,
                        max_new_tokens=s.max_new_tokens, max_cache_len=s.max_cache_len)
  probs = [policy.task.from_json(r) for r in recs]
  texts = [r["samples"] for r in recs]
  verdicts = [[policy.task.check(p, t) for t in ts] for p, ts in zip(probs, texts)]
  correct = np.asarray([[v.answer_correct for v in vs] for vs in verdicts], bool)
  scores = None
  if needs_scores(f):
    flat = solution_scores(policy, config.prm_workdir, [t for ts in texts for t in ts],
                           [p.question for p, ts in zip(probs, texts) for _ in ts], config)
    scores = flat.reshape(correct.shape)
  mask = distill.select(f.kind, scores=scores, correct=correct,
                        rng=np.random.default_rng([config.seed, round_seed]),
                        threshold=f.threshold, top_k=f.top_k, match=f.match,
                        size_of=f.get("size_of", ""))
  stats = distill.kept_stats(mask, texts, correct,
                             [[[x.valid for x in v.steps] for v in vs] for vs in verdicts])
  stats["sample_accuracy"] = float(correct.mean())
  stats["sampled_tokens"] = compute.sampled_tokens(recs)
  stats["scored_tokens"] = stats["sampled_tokens"] if needs_scores(f) else 0
  if not mask.any():
    raise ValueError(f"round with filter {f.kind!r} kept no samples (sample accuracy "
                     f"{correct.mean():.3f}); loosen the filter")
  tok = policy.tokenizer()
  tool_tokens = config.data.get("tool_tokens", "train")
  examples = [batches.encode_example(tok, p.question, t, tool_tokens)
              for p, ts, ks in zip(probs, texts, mask) for t, k in zip(ts, ks) if k]
  return examples, stats


def finetune(config, source: Policy, init: Policy, round_dir: str, examples: list) -> None:
  """Next-token training on the kept samples, starting from `init`'s weights; writes a
  policy workdir (config, data link, checkpoints) at round_dir."""
  workdirs.derive_policy_workdir(source.workdir, round_dir,
                                 distill={"round_of": os.path.abspath(source.workdir)})
  loaded = init.load()
  model, tok, mesh = loaded.model, loaded.tokenizer, loaded.mesh
  t = config.train
  job = train_lib.setup_job(model, train_lib.next_token_loss, config, round_dir, mesh,
                            init_params=lambda: loaded.params)
  d = config.data
  batch_at = train_lib.lm_batches(examples, tok, mesh, batch_size=t.batch_size,
                                  seed=config.seed, pad_multiple=d.pad_multiple,
                                  seq_len=d.seq_len, bucket_window=d.bucket_window,
                                  pack=d.get("pack", False), grad_accum=t.grad_accum)
  train_lib.fit(job.state, job.step_fn, batch_at, steps=t.steps, ckpt=job.ckpt,
                writer=MetricWriter(round_dir), log_every=t.log_every,
                desc=f"distill {os.path.basename(round_dir)}")
  job.ckpt.close()


def run(config, workdir: str) -> dict:
  validate(config)
  sharding.initialize_distributed(config.distributed)
  os.makedirs(workdir, exist_ok=True)
  log_path = os.path.join(workdir, "rounds.json")
  log = {"run_info": report.run_info(), "config": config.to_dict(), "rounds": []}
  if os.path.exists(log_path):
    with open(log_path) as f:
      saved = json.load(f)
    log["run_info"], log["rounds"] = saved["run_info"], saved["rounds"]

  def save():
    if jax.process_index() == 0:
      with open(log_path, "w") as f:
        json.dump(log, f, indent=2, default=list)

  base = Policy(config.policy_workdir)
  if not log["rounds"]:
    log["rounds"].append({"round": 0, "policy": os.path.abspath(base.workdir),
                          "eval": evaluate(base, config)})
    save()
  for r in range(len(log["rounds"]), config.rounds + 1):
    prev = Policy(log["rounds"][-1]["policy"])
    round_dir = os.path.join(workdir, f"round_{r}")
    examples, stats = select_samples(prev, config, config.seed + r)
    logging.warning("round %d kept: %s", r, stats)
    init = base if config.finetune.init == "base" else prev
    finetune(config, base, init, round_dir, examples)
    policy = Policy(round_dir)
    log["rounds"].append({"round": r, "policy": os.path.abspath(round_dir), "selection": stats,
                          "eval": evaluate(policy, config)})
    save()
  report.mark_done(workdir)
  return log
