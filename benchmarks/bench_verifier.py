"""Step scoring throughput, and the overhead of PRM beam search over best-of-N.

  python benchmarks/bench_verifier.py [--policy_workdir=W --prm_workdir=P] [--out=F.json]

1. The jitted scoring kernel (`verifier.score_steps`) on the default model with a scalar
   head: steps scored per second at batch 1 and 128 (sequences of --seq_len tokens with
   --steps step boundaries each).
2. With trained policy and PRM workdirs: best-of-N (N full samples per problem, then one
   PRM pass) against PRM beam search (width = expansions = sqrt(N)) on the same problems,
   as wall seconds per 1000 generated tokens, and the ratio, measured in one run.
"""
from __future__ import annotations

import argparse
import json
import math
import time

from common import device_name, median_time, write_result

import jax
import numpy as np

from s2jax import evaluation, search, sharding, verifier
from s2jax.config import load_config_file, model_config
from s2jax.data import gsm8k
from s2jax.models.transformer import Transformer
from s2jax.policy import Policy
from s2jax.sampling import SamplingConfig


def kernel_rows(config_path, seq_len, steps, batches, repeats):
  config = load_config_file(config_path)
  config.model.update(scalar_head=True, lm_head=False)
  model = Transformer(model_config(config.model))
  mesh = sharding.make_mesh(config.mesh.shape)
  params, _ = sharding.init_params(model, jax.random.key(0), mesh)
  rows = []
  for b in batches:
    rng = np.random.default_rng(0)
    tokens = rng.integers(4, model.cfg.vocab_size, (b, seq_len)).astype(np.int32)
    mask = np.ones((b, seq_len), bool)
    pos = np.sort(rng.choice(np.arange(seq_len // 2, seq_len), (b, steps)), axis=1).astype(np.int32)
    valid = np.ones((b, steps), bool)
    dt = median_time(lambda: verifier.score_steps(model, params, tokens, mask, pos,
                                                  valid).block_until_ready(), repeats=repeats)
    rows.append({"batch": b, "seq_len": seq_len, "steps_per_row": steps,
                 "steps_scored_per_s": b * steps / dt, "solutions_per_s": b / dt})
    print(f"score_steps batch {b:4d}: {b * steps / dt:9.0f} steps/s "
          f"({b / dt:7.1f} solutions/s)", flush=True)
  return rows


def search_overhead(policy_workdir, prm_workdir, split, num_problems, budget, seed):
  policy = Policy(policy_workdir)
  loaded = policy.load()
  params, tok, task = loaded.params, loaded.tokenizer, policy.task
  scorer = verifier.Scorer.from_workdir(prm_workdir, batch_size=64)
  records = [task.from_json(r)
             for r in gsm8k.read_jsonl(policy.split_path(split))[:num_problems]]
  questions = [p.question for p in records]
  truth = [p.answer for p in records]
  sampling = SamplingConfig(1.0)
  sampler = policy.sampler(576)

  def best_of_n():
    flat = [q for q in questions for _ in range(budget)]
    texts = evaluation.generate_solutions(sampler, params, tok, flat, batch_size=128,
                                          max_new_tokens=192, sampling=sampling,
                                          rng=jax.random.key(seed), desc="")
    scores = scorer.step_scores(flat, [task.split_steps(t)[0] for t in texts])
    agg = np.asarray([search.aggregate(s, "min") for s in scores]).reshape(-1, budget)
    answers = task.answers(texts)
    chosen = [search.best_of_n(answers[i * budget:(i + 1) * budget], agg[i])
              for i in range(len(questions))]
    return sum(len(tok.encode(t)) + 1 for t in texts), chosen

  def beam():
    w = math.isqrt(budget)
    propose = search.model_proposer(sampler, params, tok, questions, batch_size=128,
                                    max_step_tokens=48, sampling=sampling,
                                    rng=jax.random.key(seed), is_final_line=task.is_final_line)
    res = search.beam_search(len(questions), propose, search.model_step_scorer(scorer, questions),
                             search.BeamConfig(width=w, expansions=w),
                             parse_answer=task.parse_answer)
    return sum(r.tokens for r in res), [r.answer for r in res]

  out = {}
  for name, fn in (("best_of_n", best_of_n), ("beam_search", beam)):
    fn()  # compile every shape once
    t = time.perf_counter()
    tokens, chosen = fn()
    dt = time.perf_counter() - t
    out[name] = {"seconds": dt, "generated_tokens": tokens,
                 "seconds_per_1k_tokens": 1000 * dt / tokens,
                 "accuracy": float(np.mean([c == a for c, a in zip(chosen, truth)]))}
    print(f"{name:>12}: {dt:6.1f} s for {tokens} generated tokens "
          f"({1000 * dt / tokens:.2f} s per 1k tokens)", flush=True)
  out["overhead_per_token"] = (out["beam_search"]["seconds_per_1k_tokens"] /
                               out["best_of_n"]["seconds_per_1k_tokens"])
  out.update(split=split, num_problems=num_problems, budget=budget)
  print(f"beam search costs {out['overhead_per_token']:.2f}x best-of-N per generated token")
  return out


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--config", default="configs/arith.py")
  ap.add_argument("--seq_len", type=int, default=256)
  ap.add_argument("--steps", type=int, default=4)
  ap.add_argument("--batches", default="1,128")
  ap.add_argument("--repeats", type=int, default=5)
  ap.add_argument("--policy_workdir", default="")
  ap.add_argument("--prm_workdir", default="")
  ap.add_argument("--split", default="test")
  ap.add_argument("--num_problems", type=int, default=32)
  ap.add_argument("--budget", type=int, default=16)
  ap.add_argument("--out", default=None)
  args = ap.parse_args()
  result = {"device": device_name(), "config": args.config,
            "kernel": kernel_rows(args.config, args.seq_len, args.steps,
                                  [int(b) for b in args.batches.split(",")], args.repeats)}
  if args.policy_workdir and args.prm_workdir:
    result["search"] = search_overhead(args.policy_workdir, args.prm_workdir, args.split,
                                       args.num_problems, args.budget, 0)
  else:
    print("no --policy_workdir/--prm_workdir: beam-search overhead not measured")
  print(json.dumps(result, indent=2))
  write_result(args.out, result)


if __name__ == "__main__":
  main()
