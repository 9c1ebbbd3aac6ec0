"""Train a step-level (PRM) or outcome (ORM) verifier on the SFT policy's own samples,
then measure it against exact step labels on held-out problems.

  python experiments/train_verifier.py --config=configs/verifier_arith.py \
      --config.policy_workdir=workdirs/sft --workdir=workdirs/prm

Policy samples and Monte-Carlo rollouts are cached under <policy_workdir>/samples, so a
sweep over label sources samples once. Re-running with the same workdir resumes training.
Writes config.json (loadable by `s2jax.workdirs.load_model`), labels.jsonl (the training
records, TRL stepwise format for a PRM), checkpoints/, metrics.jsonl and
eval/summary.json with eval/reliability.png and eval/steps_<split>.json (each held-out
solution's step scores and exact labels, for paired comparisons of verifiers).
"""
from __future__ import annotations

import functools
import json
import math
import os
from typing import Callable


import jax
import ml_collections
import numpy as np
from absl import logging

from s2jax import compute, labels, report, sharding, verifier
from s2jax.policy import Policy
from s2jax import train as train_lib
from s2jax import verifier_metrics as vm
from s2jax.config import model_config, require, validate_optim_config
from s2jax.data import batches, jsonl, stepwise
from s2jax.metrics import MetricWriter
from s2jax.models.transformer import Transformer
from s2jax.sampling import SamplingConfig


def policy_samples(policy: Policy, config, split: str, num_problems: int, per_problem: int,
                   seed: int) -> list:
  s = config.samples
  return policy.samples(split, num_problems, per_problem, seed=seed,
                        sampling=SamplingConfig(s.temperature, s.top_k, s.top_p),
                        batch_size=s.batch_size, max_new_tokens=s.max_new_tokens,
                        max_cache_len=s.max_cache_len)


def solutions_of(task, records: list, max_solutions: int) -> list:
  """(problem, solution text) pairs, in a fixed order, optionally the first N."""
  pairs = [(task.from_json(r), s) for r in records for s in r["samples"]]
  return pairs[:max_solutions] if max_solutions > 0 else pairs


def mc_outcomes(policy: Policy, config, pairs: list, samples_key: str) -> tuple[list, list]:
  """Cached `labels.rollout_outcomes` for every (problem, solution) pair, with each pair's
  (prompt, generated) rollout tokens."""
  lc, s = config.labels, config.samples
  path = policy.cache_path("mc", samples=samples_key, n=len(pairs), k=lc.mc_rollouts,
                           t=lc.mc_temperature, max_new=lc.mc_max_new_tokens)
  if os.path.exists(path):
    cached = jsonl.read_jsonl(path, lambda r, where: r, what="cached rollouts")
    return ([np.asarray(r["outcomes"], bool).reshape(r["shape"]) for r in cached],
            [tuple(r["tokens"]) if "tokens" in r else None for r in cached])
  loaded = policy.load()
  params, tok, mesh = loaded.params, loaded.tokenizer, loaded.mesh
  outs, counts = labels.rollout_outcomes(
      policy.sampler(s.max_cache_len), params, tok, [p.question for p, _ in pairs],
      [policy.task.split_steps(t)[0] for _, t in pairs], [p.answer for p, _ in pairs],
      extract_answer=policy.task.parse_answer, k=lc.mc_rollouts, batch_size=s.batch_size,
      max_new_tokens=lc.mc_max_new_tokens,
      sampling=SamplingConfig(lc.mc_temperature), rng=jax.random.key(config.seed + 17),
      batch_sharding=sharding.batch_sharding(mesh, 2, s.batch_size), with_counts=True)
  if jax.process_index() == 0:
    jsonl.write_jsonl(path, ({"shape": list(o.shape), "outcomes": o.ravel().tolist(),
                              "tokens": list(c)} for o, c in zip(outs, counts)))
  return outs, counts


def training_records(policy: Policy, config, sample_records: list) -> tuple[list, dict]:
  """Labelled records for the chosen verifier kind and label source, plus statistics
  (including how the source's labels agree with the exact ones)."""
  lc, task = config.labels, policy.task
  pairs = solutions_of(task, sample_records, lc.max_solutions)
  rng = np.random.default_rng(config.seed)
  stats = {"solutions": len(pairs),
           "sampled_tokens": compute.sampled_tokens(sample_records)}
  if lc.get("dedupe", False):  # a sample drawn twice is one record, not twice the weight
    seen = set()
    pairs = [(p, t) for p, t in pairs
             if (p.question, t) not in seen and not seen.add((p.question, t))]
    stats["unique_solutions"] = len(pairs)
  if config.kind == "orm":
    recs = [{"prompt": p.question, "solution": t,
             "label": bool(task.check(p, t).answer_correct)} for p, t in pairs]
    stats["positive_fraction"] = float(np.mean([r["label"] for r in recs]))
    return recs, stats
  exact = [labels.exact_record(task, p, t) for p, t in pairs]
  keep = [i for i, r in enumerate(exact) if r is not None]
  stats["without_steps"] = len(pairs) - len(keep)
  kept = [pairs[i] for i in keep]
  key = json.dumps([config.seed, config.samples.to_dict()], sort_keys=True, default=list)
  mc = {}

  def rollouts():
    if "outcomes" not in mc:
      mc["outcomes"], mc["tokens"] = mc_outcomes(policy, config, kept, key)
    return mc["outcomes"]
  recs = labels.label(lc.source, labels.LabelContext(task, kept, lc, rollouts=rollouts))
  if config.get("ranking_weight", 0.0) > 0:
    # Which problem each sample answers and whether its answer is right: what the
    # within-problem ranking loss pairs (verifier.within_problem_ranking).
    group_of = {r["question"]: i for i, r in enumerate(sample_records)}
    recs = [dict(r, group=group_of[p.question], outcome=float(task.check(p, t).answer_correct))
            for r, (p, t) in zip(recs, kept)]
  if "tokens" in mc:  # only the label source that made rollouts pays for them
    stats["mc_rollout_tokens"] = compute.token_total(mc["tokens"])
  ref = [l for i in keep for l in exact[i]["labels"]]
  got = [l for r in recs for l in r["labels"]]
  stats["label_agreement"] = vm.label_agreement(got, ref)
  if lc.corrupted_per_problem > 0:
    recs += labels.corrupted_records(task, [task.from_json(r) for r in sample_records], rng,
                                     lc.corrupted_per_problem, plan=policy.planned,
                                     kinds=tuple(lc.get("corruption_kinds", ())) or None)
  if lc.balance:
    recs = labels.balance(recs, rng)
  stats["valid_steps"], stats["invalid_steps"] = labels.label_counts(recs)
  max_steps = config.data.max_steps
  stats["truncated"] = sum(len(r["completions"]) > max_steps for r in recs)
  recs = [dict(r, completions=r["completions"][:max_steps], labels=r["labels"][:max_steps])
          for r in recs]
  return recs, stats


def validate(config) -> None:
  require(bool(config.policy_workdir), "policy_workdir", config.policy_workdir,
          "must name the SFT workdir the verifier learns from")
  require(config.kind in verifier.KINDS, "kind", config.kind, f"must be one of {verifier.KINDS}")
  require(config.labels.source in labels.sources(), "labels.source", config.labels.source,
          f"must be one of {labels.sources()}")
  require(config.labels.mc_mode in labels.MC_MODES, "labels.mc_mode", config.labels.mc_mode,
          f"must be one of {labels.MC_MODES}")
  require(0 < config.labels.mc_k <= config.labels.mc_rollouts, "labels.mc_k",
          config.labels.mc_k, f"must be in 1..labels.mc_rollouts={config.labels.mc_rollouts}")
  validate_optim_config(config)


def run(config, workdir: str) -> dict:
  validate(config)
  sharding.initialize_distributed(config.distributed)
  policy = Policy(config.policy_workdir, config.policy_step)
  tok = policy.tokenizer()
  model_dict = {**policy.config.model.to_dict(), **config.model.to_dict()}
  model = Transformer(model_config(ml_collections.ConfigDict(model_dict), vocab_size=tok.vocab_size))
  os.makedirs(workdir, exist_ok=True)
  if jax.process_index() == 0:
    saved = config.to_dict()
    saved.update(model=dict(model_dict, vocab_size=tok.vocab_size),
                 tokenizer={"path": policy.tokenizer_path}, policy_step=policy.step,
                 prompt=(policy.config.prompt.to_dict() if "prompt" in policy.config
                         else {"kind": "plain"}))
    with open(os.path.join(workdir, "config.json"), "w") as f:
      json.dump(saved, f, indent=2, default=list)
  report.write_run_info(workdir)

  s = config.samples
  train_samples = policy_samples(policy, config, "train", s.train_problems, s.per_problem,
                                 config.seed)
  records, stats = training_records(policy, config, train_samples)
  if not records:
    raise ValueError("no training records: every sampled solution was empty")
  if jax.process_index() == 0:
    jsonl.write_jsonl(os.path.join(workdir, "labels.jsonl"), records)
  writer = MetricWriter(workdir)
  writer.write(0, event="data", **stats)
  logging.warning("verifier data: %s", stats)

  mesh = sharding.make_mesh(config.mesh.shape)
  t = config.train
  loss = (functools.partial(verifier.prm_loss, ranking_weight=config.get("ranking_weight", 0.0))
          if config.kind == "prm" else verifier.orm_loss)
  job = train_lib.setup_job(model, loss, config, workdir, mesh,
                            init_params=(lambda: policy.load().params)
                            if config.init_from_policy else None)
  if job.copied is not None:
    writer.write(0, event="init_from_policy", copied=len(job.copied))
  lengths = np.asarray([stepwise.record_length(tok, r) for r in records])
  if lengths.max() > config.data.seq_len:
    raise ValueError(f"a training record has {lengths.max()} tokens, more than "
                     f"data.seq_len={config.data.seq_len}")
  batch_at = training_batches(config, tok, records, lengths, mesh)
  state = train_lib.fit(job.state, job.step_fn, batch_at, steps=t.steps, ckpt=job.ckpt,
                        writer=writer, log_every=t.log_every, desc=f"train {config.kind}")
  job.ckpt.close()
  summary = evaluate_verifier(config, workdir, policy, model, state.params, tok, mesh)
  summary["data"] = stats
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "eval", "summary.json"), "w") as f:
      json.dump(summary, f, indent=2)
  return summary


def training_batches(config, tok, records: list, lengths: np.ndarray, mesh) -> Callable:
  """`batch_at(step)`: the global batch of training step `step` (length-bucketed order;
  padded to the batch's longest record, or with data.pack its records packed into rows
  of seq_len, as lm_batches packs SFT examples)."""
  t = config.train
  rows = sharding.process_rows(t.batch_size)
  pack = config.data.get("pack", False)
  if config.get("ranking_weight", 0.0) > 0:
    if pack:
      raise ValueError("ranking_weight > 0 needs whole records per row; set data.pack=False")
    # A problem's samples in one batch; a record of no problem is a group of its own.
    order = batches.GroupedBatches([r.get("group", -1) if r.get("group", -1) >= 0 else -1 - i
                                    for i, r in enumerate(records)], t.batch_size, config.seed)
  else:
    order = batches.batch_order(len(records), t.batch_size, config.seed, lengths=lengths,
                                window=config.data.bucket_window)
  if pack and config.kind != "prm":
    raise ValueError("data.pack: packing is for PRM training (kind='prm'), not "
                     f"kind={config.kind!r}")
  rows_multiple = math.lcm(max(1, t.batch_size // 8),
                           sharding.row_shards(sharding.batch_sharding(mesh, 2)),
                           jax.process_count())

  def batch_at(step):
    idx = order[step]
    if pack:
      full = stepwise.prm_packed_batch(tok, [records[i] for i in idx], config.data.seq_len,
                                       config.data.max_steps, rows_multiple)
      return {k: sharding.global_batch(v[sharding.process_rows(len(v))], mesh)
              for k, v in full.items()}
    chosen = [records[i] for i in idx][rows]
    length = min(config.data.seq_len, -(-lengths[idx].max() // config.data.pad_multiple)
                 * config.data.pad_multiple)
    if config.kind == "prm":
      local = stepwise.prm_batch(tok, chosen, length, config.data.max_steps)
    else:
      local = stepwise.outcome_batch(tok, chosen, length)
    return {k: sharding.global_batch(v, mesh) for k, v in local.items()}

  return batch_at


def evaluate_verifier(config, workdir, policy, model, params, tok, mesh) -> dict:
  """Held-out policy samples on every evaluation split, judged against exact labels."""
  s = config.samples
  scorer = verifier.Scorer(model, params, tok, batch_size=config.eval.score_batch_size,
                           batch_sharding=sharding.batch_sharding(mesh, 2,
                                                                  config.eval.score_batch_size))
  out, curves, held_out = {}, {}, {}
  for split in policy.task.eval_split_names(policy.config):
    recs = policy_samples(policy, config, split, s.heldout_problems, s.heldout_per_problem,
                          config.seed + 1000)
    pairs = solutions_of(policy.task, recs, 0)
    problem_ids = [i for i, r in enumerate(recs) for _ in r["samples"]]
    texts = [t for _, t in pairs]
    verdicts = [policy.task.check(p, t) for p, t in pairs]
    correct = np.asarray([v.answer_correct for v in verdicts], bool)
    res = {"solutions": len(pairs), "answer_correct_fraction": float(correct.mean())}
    saved = {"problem": problem_ids, "text": texts, "correct": correct.tolist()}
    if config.kind == "prm":
      steps = [policy.task.split_steps(t)[0] for _, t in pairs]
      scores = scorer.step_scores([p.question for p, _ in pairs], steps)
      exact = [[x.valid for x in v.steps] for v in verdicts]
      res.update(vm.step_report(scores, exact, config.eval.threshold))
      res["process_bench"] = vm.process_bench(scores, exact, config.eval.threshold)
      saved.update(scores=[np.asarray(x, float).tolist() for x in scores],
                   labels=[[bool(y) for y in ys] for ys in exact])
      solution_scores = [float(np.min(x)) if len(x) else 0.0 for x in scores]
      res["error_kinds"] = vm.error_kinds([[x.reason for x in v.steps] for v in verdicts],
                                          scores, exact)
      res["score_length"] = vm.score_length_correlation(solution_scores,
                                                        [len(x) for x in scores])
      curves[split] = res["reliability"]
    else:
      solution_scores = scorer.outcome_scores([p.question for p, _ in pairs],
                                              [t for _, t in pairs])
      res["reliability"] = vm.reliability(solution_scores, correct)
      curves[split] = res["reliability"]
    res["solution_auroc"] = vm.auroc(solution_scores, correct)
    # What search uses: the order of one problem's samples (s2jax.verifier_metrics).
    res["problem_mean_auroc"] = vm.problem_mean_auroc(solution_scores, correct, problem_ids)
    res["within_problem_auroc"] = vm.within_problem_auroc(solution_scores, correct,
                                                          problem_ids)
    res["within_problem_auroc_distinct"] = vm.within_problem_auroc(
        solution_scores, correct, problem_ids, texts)
    held_out[split] = dict(saved, solution_scores=[float(x) for x in solution_scores])
    out[split] = res
    logging.warning("%s %s: %s", config.kind, split,
                    {k: v for k, v in res.items() if k != "reliability"})
  if jax.process_index() == 0:
    os.makedirs(os.path.join(workdir, "eval"), exist_ok=True)
    vm.plot_reliability(curves, os.path.join(workdir, "eval", "reliability.png"),
                        title=f"{config.kind.upper()} calibration, held-out policy samples")
    # Every held-out sample's problem, text, outcome and scores (per step and per
    # solution; PRM steps with their exact labels): any analysis, paired comparisons of
    # two verifiers among them (s2jax.verifier_metrics), is redone without the checkpoint.
    for split, steps in held_out.items():
      with open(os.path.join(workdir, "eval", f"steps_{split}.json"), "w") as f:
        json.dump(steps, f)
  return out
