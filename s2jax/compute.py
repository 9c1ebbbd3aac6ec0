"""Training compute of a stage, in token-passes of one transformer of the policy's size.

A forward pass over one token counts 1 and a training token (forward + backward) 3: the
usual 2N and 6N FLOPs per token divided by 2N. The verifier and the value head share the
policy's trunk size, so the passes of every stage add up, and arms of an ablation can be
matched ("verifier + RL" against "more SFT at the same compute"). Counted after the fact
from the counts each stage logged: the padded positions every training step computed
(`trained_positions`, s2jax.train.fit), the prompt and generated tokens of every sample
and rollout, the tokens each verifier scored for a reward. An arm is charged only for what
it ran: an outcome-only PPO run pays no PRM scoring, a label source without rollouts no
rollouts. The one estimate left is the shipped base policy's SFT, trained outside any
workdir (`base_policy_passes`).
"""
from __future__ import annotations

import json
import os
from typing import Optional

import numpy as np

from s2jax import workdirs
from s2jax.data import gsm8k
from s2jax.metrics import latest_per_step, read_metrics

FORWARD, TRAIN = 1, 3


def token_total(counts) -> Optional[int]:
  """Prompt plus generated tokens over (prompt, generated) pairs; None when any is
  missing (samples cached before the counts were kept), so no total is made up."""
  total = 0
  for c in counts:
    if c is None:
      return None
    total += int(c[0]) + int(c[1])
  return total


def sampled_tokens(sample_records) -> Optional[int]:
  """`token_total` of every sample of `Policy.samples` records (their "sample_tokens")."""
  return token_total(c for r in sample_records for c in r.get("sample_tokens") or [None])


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
  """Mean tokens of the policy's SFT examples (its own target format) over its training
  split."""
  from s2jax.stages import sft as sft_stage
  tok, recs = _train_records(policy_workdir, limit)
  config = workdirs.read_config(policy_workdir)
  return float(np.mean([len(e) for e in sft_stage.training_examples(config, recs, tok)]))


def trained_passes(workdir: str) -> float:
  """3 x the padded positions a job's training steps computed, from its metrics.jsonl
  (a resumed run's repeated lines count once); 0 when it trained no step."""
  lines = latest_per_step([m for m in read_metrics(os.path.join(workdir, "metrics.jsonl"))
                           if "loss" in m])
  missing = [m["step"] for m in lines if "trained_positions" not in m]
  if missing:
    raise ValueError(f"{workdir}: metrics.jsonl lines at steps {missing[:3]} have no "
                     "trained_positions (logged before training compute was counted); "
                     "re-run the job to count it")
  return float(TRAIN * sum(m["trained_positions"] for m in lines))


def sft_passes(workdir: str) -> float:
  """SFT (or continued fine-tuning on reference solutions), as trained."""
  return trained_passes(workdir)


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
  """How many next-token steps of `batch_size` reference examples cost about `passes`:
  a plan made before the run (real tokens, no padding); the run's own count is what a
  report charges it (`sft_passes`)."""
  per_step = batch_size * mean_example_tokens(policy_workdir) * TRAIN
  return max(1, int(round(passes / per_step)))


def _data_event(workdir: str) -> dict:
  events = [m for m in read_metrics(os.path.join(workdir, "metrics.jsonl"))
            if m.get("event") == "data"]
  if not events:
    raise ValueError(f"{workdir}: metrics.jsonl has no data event")
  return events[-1]


def _counted(value, what: str, workdir: str) -> float:
  if value is None:
    raise ValueError(f"{workdir}: no count of {what} (samples cached before counts were "
                     "kept); delete the policy's samples/ cache and re-run")
  return float(value)


def verifier_passes(workdir: str) -> dict:
  """Sampling the policy's training solutions (one forward per prompt and generated
  token), Monte-Carlo rollouts when the label source made them, and training (3 per
  padded position)."""
  data = _data_event(workdir)
  sampling = _counted(data.get("sampled_tokens"), "sampled tokens", workdir) * FORWARD
  if "mc_rollout_tokens" in data:
    sampling += _counted(data["mc_rollout_tokens"], "rollout tokens", workdir) * FORWARD
  training = trained_passes(workdir)
  return {"sampling": sampling, "training": training, "total": sampling + training}


def ppo_passes(workdir: str) -> dict:
  """Per iteration, from the counts the learner logged: the rollout (prompt and generated
  tokens), the verifiers that scored it for a reward, the old-policy / value / reference
  forwards and the `epochs` of updates over the padded batch."""
  metrics = latest_per_step([m for m in read_metrics(os.path.join(workdir, "metrics.jsonl"))
                             if "verifier_reward" in m])
  if not metrics:
    raise ValueError(f"{workdir}: no RL iterations in metrics.jsonl")
  keys = ("prompt_tokens", "generated_tokens", "scored_tokens", "forward_positions",
          "update_positions")
  missing = [k for k in keys if k not in metrics[0]]
  if missing:
    raise ValueError(f"{workdir}: RL metrics without {missing} (logged before compute was "
                     "counted); re-run the stage to count it")
  total = {k: float(sum(m[k] for m in metrics)) for k in keys}
  rollout = (total["prompt_tokens"] + total["generated_tokens"]) * FORWARD
  scoring = total["scored_tokens"] * FORWARD
  update = total["forward_positions"] * FORWARD + total["update_positions"] * TRAIN
  return {"rollout": rollout, "scoring": scoring, "update": update,
          "total": rollout + scoring + update, "iterations": len(metrics)}


def distill_passes(workdir: str) -> dict:
  """Every round of self-distillation: sampling, PRM scoring of the samples when the
  filter uses scores, and fine-tuning on the kept ones (rounds.json names each round)."""
  with open(os.path.join(workdir, "rounds.json")) as f:
    rounds = [r for r in json.load(f)["rounds"] if "selection" in r]  # round 0: the start
  if not rounds:
    raise ValueError(f"{workdir}: rounds.json lists no finished round")
  sampling = scoring = training = 0.0
  for r in rounds:
    sel = r["selection"]
    sampling += _counted(sel.get("sampled_tokens"), "sampled tokens", workdir) * FORWARD
    scoring += _counted(sel.get("scored_tokens"), "scored tokens", workdir) * FORWARD
    training += trained_passes(r["policy"])
  return {"sampling": sampling, "scoring": scoring, "training": training,
          "total": sampling + scoring + training}
