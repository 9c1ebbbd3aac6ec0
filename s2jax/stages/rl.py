"""On-policy RL from the SFT policy: PPO with step-level verifier rewards, outcome rewards,
or both; GRPO and RLOO on the same kernels (the learner is s2jax.rl.learner).

  python experiments/ppo.py --config=configs/ppo_arith.py \
      --config.policy_workdir=workdirs/sft --config.prm_workdir=workdirs/prm \
      --workdir=workdirs/ppo

Every iteration: rollouts of `rollout.prompts` training problems x `rl.group_size` samples
(the jitted sampler), rewards (PRM probability of each step on its end-of-step token,
outcome from the exact checker or an ORM on the last token), then `s2jax.rl.kernels.make_update`
(KL to the frozen SFT policy, GAE or group advantages, epochs x minibatches in one jitted
call). A fraction of prompts can start from a prefix that contains a wrong step (a
corrupted reference step, or the policy's own first mistake from the previous iteration)
so the policy practises recovering; the recovery rate on held-out corrupted prefixes is
measured before and after. The verifier's reward and the exact checker's accuracy are
logged side by side every iteration, with a loud warning when the reward climbs while
accuracy falls. The workdir is a policy workdir (evaluation, search and later stages load
it); re-running resumes from the last checkpoint. metrics.jsonl has one row per
iteration, eval.jsonl one row per evaluation.
"""
from __future__ import annotations

import os

import numpy as np
from absl import logging

from s2jax import report, sharding
from s2jax.data import gsm8k
from s2jax.metrics import MetricWriter, progress, read_metrics
from s2jax.rl.learner import Learner, hacking_alarm, recovery_problems


def run(config, workdir: str) -> dict:
  sharding.initialize_distributed(config.distributed)
  os.makedirs(workdir, exist_ok=True)
  report.write_run_info(workdir)
  trainer = Learner(config, workdir)
  e, t = config.eval, config.train
  records = {name: gsm8k.read_jsonl(trainer.base.split_path(name))[:e.num_problems]
             for name in trainer.task.eval_split_names(trainer.base.config)}
  recovery_set = recovery_problems(trainer.base, config)
  writer = MetricWriter(workdir)
  evals = MetricWriter(workdir, "eval.jsonl")
  eval_path = os.path.join(workdir, "eval.jsonl")
  done_evals = {r["step"] for r in read_metrics(eval_path)} if os.path.exists(eval_path) else set()
  history = read_metrics(writer.path) if os.path.exists(writer.path) else []
  rewards = [h["verifier_reward"] for h in history if "verifier_reward" in h]
  accs = [h["true_accuracy"] for h in history if h.get("true_accuracy") is not None]
  start = trainer.iterations_done

  def maybe_eval(it):
    if it in done_evals or not (it == 0 or it == t.iterations or (
        e.every and it % e.every == 0)):
      return
    result = trainer.evaluate(records, recovery_set)
    evals.write(it, **result)
    logging.warning("eval at iteration %d: %s", it, result)

  maybe_eval(start)
  bar = progress(t.iterations, initial=start, desc=f"rl {config.rl.algorithm}")
  for it in range(start, t.iterations):
    m = trainer.iteration(it)
    rewards.append(m["verifier_reward"])
    if m["true_accuracy"] is not None:
      accs.append(m["true_accuracy"])
    m["hacking_alarm"] = hacking_alarm(rewards, accs, config.hacking.window,
                                          config.hacking.alpha)
    if m["hacking_alarm"]:
      logging.error("!" * 72 + "\nREWARD HACKING? iteration %d: the verifier's reward rose "
                    "(%.3f -> %.3f) while exact-checker accuracy fell (%.3f -> %.3f) over the "
                    "last %d iterations.\n" + "!" * 72, it + 1,
                    np.mean(rewards[-2 * config.hacking.window:-config.hacking.window]),
                    np.mean(rewards[-config.hacking.window:]),
                    np.mean(accs[-2 * config.hacking.window:-config.hacking.window]),
                    np.mean(accs[-config.hacking.window:]), config.hacking.window)
    writer.write(it + 1, **m)
    trainer.save()
    bar.update(1)
    bar.set_postfix(reward=f"{m['verifier_reward']:.3f}",
                    acc=f"{m['true_accuracy'] if m['true_accuracy'] is not None else 0:.3f}",
                    kl=f"{m['kl']:.4f}")
    maybe_eval(it + 1)
  bar.close()
  trainer.save(force=trainer.ckpt.latest_step() != t.iterations)
  trainer.ckpt.close()
  report.mark_done(workdir)
  return {"metrics": read_metrics(writer.path), "evals": read_metrics(eval_path)}
