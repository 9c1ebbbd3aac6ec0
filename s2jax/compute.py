"""Training compute of a stage, in token-passes of one transformer of the policy's size.

A forward pass over one token counts 1 and a training token (forward + backward) 3: the
usual 2N and 6N FLOPs per token divided by 2N. The verifier and the value head share the
policy's trunk size, so the passes of every stage add up, and arms of an ablation can be
matched ("verifier + RL" against "more SFT at the same compute"). Counted after the fact
from what each stage's workdir recorded (configs, data, metrics), not estimated up front.
"""
from __future__ import annotations

import json
import os

import numpy as np

from s2jax import workdirs
from s2jax.data import batches, gsm8k, jsonl, stepwise
from s2jax.metrics import latest_per_step, read_metrics

FORWARD, TRAIN = 1, 3


def _config(workdir: str) -> dict:
  with open(os.path.join(workdir, "config.json")) as f:
    return json.load(f)


def _train_records(policy_workdir: str, limit: int) -> tuple:
  """The policy's tokenizer and the first `limit` records of its training split."""
  tok = workdirs.tokenizer(policy_workdir, workdirs.read_config(policy_workdir))
  recs = gsm8k.read_jsonl(os.path.join(policy_workdir, "data", "train.jsonl"))[:limit]
  if not recs:
    raise ValueError(f"{policy_workdir}: empty training split")
  return tok, recs


def mean_example_tokens(policy_workdir: str, limit: int = 2000) -> float:
  """Mean tokens of (question, reference solution) over the policy's training split."""
  tok, recs = _train_records(policy_workdir, limit)
  return float(np.mean([len(batches.encode_example(tok, r["question"], r["answer"]))
                        for r in recs]))


def mean_question_tokens(policy_workdir: str, limit: int = 2000) -> float:
  """Mean prompt tokens (the prompt format's ids) over the policy's training split."""
  tok, recs = _train_records(policy_workdir, limit)
  return float(np.mean([len(batches.encode_prompt(tok, r["question"])) for r in recs]))


def sft_passes(workdir: str, steps: int | None = None) -> float:
  """SFT (or continued fine-tuning on reference solutions): steps x batch x tokens x 3."""
  c = _config(workdir)
  steps = c["train"]["steps"] if steps is None else steps
  return float(steps * c["train"]["batch_size"] * mean_example_tokens(workdir) * TRAIN)


def base_policy_passes(workdir: str) -> float:
  """The SFT that trained the base policy an SFT workdir started from (`init_from`; done
  once, outside the pipeline), in the same units; 0 when it started from scratch."""
  c = _config(workdir)
  if not c.get("init_from"):
    return 0.0
  from s2jax import base_policy
  t = base_policy.load(c["init_from"]).meta["config"]["train"]
  return float(t["steps"] * t["batch_size"] * mean_example_tokens(workdir) * TRAIN)


def sft_steps_for(policy_workdir: str, passes: float, batch_size: int) -> int:
  """How many next-token steps of `batch_size` reference examples cost `passes`."""
  per_step = batch_size * mean_example_tokens(policy_workdir) * TRAIN
  return max(1, int(round(passes / per_step)))


def verifier_passes(workdir: str) -> dict:
  """Sampling the policy's solutions (one forward per token) plus training the verifier on
  the labelled records (3 per token). Monte-Carlo labels add their rollouts."""
  c = _config(workdir)
  policy_wd = c["policy_workdir"]
  tok = workdirs.tokenizer(policy_wd, workdirs.read_config(policy_wd))
  records = jsonl.read_jsonl(os.path.join(workdir, "labels.jsonl"), lambda r, where: r,
                             what="verifier labels")
  lengths = np.asarray([stepwise.record_length(tok, r) for r in records], float)
  s = c["samples"]
  sampling = s["train_problems"] * s["per_problem"] * float(lengths.mean()) * FORWARD
  if c["labels"]["source"] == "mc":  # every step prefix of every labelled sample, K times
    steps = float(np.mean([len(r["completions"]) for r in records]))
    sampling += (len(records) * steps * c["labels"]["mc_rollouts"]
                 * float(lengths.mean()) * FORWARD)
  training = c["train"]["steps"] * c["train"]["batch_size"] * float(lengths.mean()) * TRAIN
  return {"sampling": sampling, "training": training, "total": sampling + training}


def ppo_passes(workdir: str) -> dict:
  """Per iteration: the rollout (prompt prefill + one forward per generated token), the
  PRM scoring the rollouts, the reference and old-policy/value forwards, and `epochs`
  training passes, all over prompt + response tokens; generated tokens from metrics."""
  c = _config(workdir)["rl"]  # an RL workdir is a policy workdir; its RL config sits here
  metrics = latest_per_step([m for m in read_metrics(os.path.join(workdir, "metrics.jsonl"))
                             if "rollout_tokens_per_s" in m])
  if not metrics:
    raise ValueError(f"{workdir}: no RL iterations in metrics.jsonl")
  rows = c["rollout"]["prompts"] * c["rl"]["group_size"]
  prompt = mean_question_tokens(c["policy_workdir"])
  per_token = FORWARD * 3 + TRAIN * c["rl"]["epochs"]  # PRM, reference, old policy; updates
  rollout = update = 0.0
  for m in metrics:
    generated = m["rollout_tokens_per_s"] * m["time_rollout"]
    rollout += rows * prompt + generated
    update += (rows * prompt + generated) * per_token
  return {"rollout": rollout, "scoring_and_update": update, "total": rollout + update,
          "iterations": len(metrics)}
