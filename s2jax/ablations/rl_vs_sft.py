"""Ablation 1: does verifier + RL beat plain fine-tuning at matched training compute?

  python experiments/ablation.py --config=configs/ablations/rl_vs_sft.py \
      --workdir=workdirs/ablations --out=results/ablations/rl_vs_sft

See configs/ablations/rl_vs_sft.py for the arms; s2jax/cli.py for --point, --dry_run
and --report_only.
"""
from __future__ import annotations

import json
import os


import ml_collections

from s2jax.ablations import common as ablation
from s2jax import compute, report
from s2jax.data import gsm8k
from s2jax.metrics import read_metrics

NAME = "rl_vs_sft"


def arm_dir(workdir: str, seed: int, arm: str) -> str:
  return os.path.join(workdir, NAME, f"seed{seed}", arm)


def rl_passes(pipe: str) -> float:
  return (compute.verifier_passes(os.path.join(pipe, "verifier"))["total"]
          + compute.ppo_passes(os.path.join(pipe, "ppo"))["total"])


def sft_more(config, workdir: str, seed: int) -> None:
  """Next-token training on reference solutions from the SFT weights, for the compute
  the seed's verifier + PPO took."""
  from s2jax.stages import distill as distill_stage
  from s2jax.policy import Policy
  pipe = ablation.pipeline_dir(workdir, seed)
  sft_dir = os.path.join(pipe, "sft")
  d = arm_dir(workdir, seed, "sft_more")
  if report.is_done(d):
    return
  f = config.finetune
  passes = rl_passes(pipe)
  steps = compute.sft_steps_for(sft_dir, passes, f.batch_size)
  c = ml_collections.ConfigDict(config.pipeline.distill.to_dict())
  c.seed = seed
  c.optim.update(lr=f.lr, warmup_steps=f.warmup_steps, decay_steps=steps)
  c.train.update(steps=steps, batch_size=f.batch_size, checkpoint_every=max(steps // 4, 1))
  from s2jax.stages import sft as sft_stage
  base = Policy(sft_dir)
  # the SFT policy's own targets (plan line, calculator tokens masked), not raw answers
  examples = sft_stage.training_examples(
      base.config, gsm8k.read_jsonl(os.path.join(sft_dir, "data", "train.jsonl")),
      base.tokenizer())
  distill_stage.finetune(c, base, base, d, examples)
  e = c.eval
  summaries = Policy(d).evaluate(num_problems=e.num_problems, batch_size=e.batch_size,
                                 max_new_tokens=e.max_new_tokens, max_cache_len=e.max_cache_len)
  with open(os.path.join(d, "result.json"), "w") as fh:
    json.dump({"steps": steps, "matched_passes": passes, "passes": compute.sft_passes(d),
               "accuracy": {k: v["accuracy"] for k, v in summaries.items()},
               "per_problem": {k: v["per_problem"] for k, v in summaries.items()}}, fh,
              indent=2)
  report.mark_done(d)


def ppo_outcome(config, workdir: str, seed: int) -> None:
  from s2jax.stages import rl as rl_stage
  pipe = ablation.pipeline_dir(workdir, seed)
  d = arm_dir(workdir, seed, "ppo_outcome")
  if report.is_done(d):
    return
  c = ml_collections.ConfigDict(config.pipeline.ppo.to_dict())
  c.seed = seed
  c.policy_workdir = os.path.abspath(os.path.join(pipe, "sft"))
  c.prm_workdir = os.path.abspath(os.path.join(pipe, "verifier"))  # monitored, weight 0
  c.rewards.step_weight = 0.0
  rl_stage.run(c, d)


def run_point(config, workdir: str, seed: int, arm: str) -> None:
  ablation.run_pipeline(config, workdir, seed)
  if arm == "sft_more":
    sft_more(config, workdir, seed)
  elif arm == "ppo_outcome":
    ppo_outcome(config, workdir, seed)
  elif arm != "ppo_prm":
    raise ValueError(f"unknown arm {arm!r}")


def collect(config, workdir: str) -> dict:
  """{arm: {seed: {"accuracy": {split: acc}, "passes": token-passes}}} of finished runs."""
  out = {"SFT": {}, **{arm: {} for arm in config.arms}}
  for seed in config.seeds:
    pipe = ablation.pipeline_dir(workdir, seed)
    if not os.path.exists(os.path.join(pipe, "metrics.json")):
      continue
    with open(os.path.join(pipe, "metrics.json")) as f:
      m = json.load(f)
    per = m.get("per_problem", {})
    out["SFT"][seed] = {"accuracy": m["accuracy"]["SFT"], "passes": 0.0,
                        "per_problem": per.get("SFT")}
    if "ppo_prm" in config.arms:
      out["ppo_prm"][seed] = {"accuracy": m["accuracy"]["PPO"], "passes": rl_passes(pipe),
                              "per_problem": per.get("PPO")}
    d = arm_dir(workdir, seed, "sft_more")
    if "sft_more" in config.arms and report.is_done(d):
      with open(os.path.join(d, "result.json")) as f:
        r = json.load(f)
      out["sft_more"][seed] = {"accuracy": r["accuracy"], "passes": r["passes"],
                               "steps": r["steps"], "per_problem": r.get("per_problem")}
    d = arm_dir(workdir, seed, "ppo_outcome")
    if "ppo_outcome" in config.arms and report.is_done(d):
      last = read_metrics(os.path.join(d, "eval.jsonl"))[-1]
      out["ppo_outcome"][seed] = {"accuracy": last["accuracy"],
                                  "per_problem": last.get("per_problem"),
                                  "passes": compute.ppo_passes(d)["total"]}
  return out


LABELS = {"SFT": "SFT (start)", "ppo_prm": "verifier + PPO", "sft_more": "more SFT (matched)",
          "ppo_outcome": "PPO, outcome only"}


def write(config, workdir: str, out: str) -> None:
  runs = collect(config, workdir)
  splits = ablation.split_names(runs)
  md = ablation.header("Ablation 1: verifier + RL against plain fine-tuning at matched compute",
                       "experiments/ablation.py", config, report.run_info())
  md += ["Every arm starts from the seed's SFT policy. `more SFT (matched)` trains on the "
         "reference solutions for as many token-passes (forward 1, forward+backward 3; "
         "`s2jax/compute.py`) as the seed's verifier (its sampling and training) and PPO "
         "took together. Greedy accuracy on the same first "
         f"{config.pipeline.distill.eval.num_problems} problems of each split.", ""]
  rows, series = [], {}
  for arm, by_seed in runs.items():
    if not by_seed:
      continue
    accs = {s: [r["accuracy"].get(s) for r in by_seed.values()] for s in splits}
    series[LABELS[arm]] = accs
    passes = ablation.mean_std([r["passes"] for r in by_seed.values()])[0]
    extra = ""
    if arm == "sft_more":
      extra = f" ({ablation.mean_std([r['steps'] for r in by_seed.values()])[0]:.0f} steps)"
    rows.append([LABELS[arm] + extra, f"{passes:.3g}", len(by_seed)]
                + [ablation.fmt(accs[s]) for s in splits])
  md += [report.markdown_table(["arm", "extra token-passes", "seeds"] + splits, rows), ""]
  # The claim: verifier + PPO against SFT, and against more SFT for the same compute.
  paired, stats = ablation.paired_table(
      runs, [("ppo_prm", "sft_more"), ("ppo_prm", "SFT"), ("sft_more", "SFT"),
             ("ppo_outcome", "SFT"), ("ppo_prm", "ppo_outcome")], splits, LABELS)
  md += paired
  md += ablation.save_bars(out, splits, series, "verifier + RL vs plain fine-tuning (matched compute)",
                           "accuracy by arm")
  ablation.write_result(out, md, {"runs": runs, "paired": stats}, config, workdir)
