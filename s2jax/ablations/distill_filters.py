"""Ablation 2: PRM-filtered self-distillation against STaR and random samples, matched size.

  python experiments/ablation.py \
      --config=configs/ablations/distill_filters.py --workdir=workdirs/ablations \
      --out=results/ablations/distill_filters
"""
from __future__ import annotations

import json
import os


import ml_collections

from s2jax.ablations import common as ablation
from s2jax import report

NAME = "distill_filters"
LABELS = {"SFT": "SFT (start)", "prm_topk": "PRM top-1", "correct": "answer-correct (STaR)",
          "random": "random"}


def arm_dir(config, workdir: str, seed: int, arm: str) -> str:
  if arm == "prm_topk":
    return os.path.join(ablation.pipeline_dir(workdir, seed), "distill")
  return os.path.join(workdir, NAME, f"seed{seed}", arm)


def run_point(config, workdir: str, seed: int, arm: str) -> None:
  from s2jax.stages import distill as distill_stage
  pipe = ablation.run_pipeline(config, workdir, seed)
  if arm == "prm_topk":
    return
  if arm not in config.filters:
    raise ValueError(f"unknown arm {arm!r}; known: prm_topk, {', '.join(config.filters)}")
  d = arm_dir(config, workdir, seed, arm)
  if report.is_done(d):
    return
  c = ml_collections.ConfigDict(config.pipeline.distill.to_dict())
  c.seed = seed
  c.policy_workdir = os.path.abspath(os.path.join(pipe, "sft"))
  c.prm_workdir = os.path.abspath(os.path.join(pipe, "verifier"))
  c.filter.update(config.filters[arm].to_dict())
  distill_stage.run(c, d)


def collect(config, workdir: str) -> dict:
  out = {"SFT": {}, **{arm: {} for arm in config.arms}}
  for seed in config.seeds:
    for arm in config.arms:
      path = os.path.join(arm_dir(config, workdir, seed, arm), "rounds.json")
      if not (report.is_done(os.path.dirname(path)) and os.path.exists(path)):
        continue
      with open(path) as f:
        rounds = json.load(f)["rounds"]
      first, last = rounds[0], rounds[-1]
      start = first["eval"]  # round 0: the SFT policy itself
      out["SFT"][seed] = {"accuracy": {k: v["accuracy"] for k, v in start.items()},
                          "per_problem": {k: v.get("per_problem") for k, v in start.items()}}
      out[arm][seed] = {"accuracy": {k: v["accuracy"] for k, v in last["eval"].items()},
                        "fully_valid": {k: v["fully_valid"] for k, v in last["eval"].items()},
                        "per_problem": {k: v.get("per_problem") for k, v in last["eval"].items()},
                        "selection": last["selection"]}
  return out


def write(config, workdir: str, out: str) -> None:
  runs = collect(config, workdir)
  splits = ablation.split_names(runs)
  d = config.pipeline.distill
  md = ablation.header("Ablation 2: verifier-filtered self-distillation against STaR and "
                       "random samples (matched data size)",
                       "experiments/ablation.py", config, report.run_info())
  md += [f"One round: {d.samples.per_problem} samples (temperature {d.samples.temperature}) of "
         f"each of {d.samples.problems} training problems from the seed's SFT policy; every "
         f"arm fine-tunes from the SFT weights for {d.train.steps} steps on what its filter "
         "kept. `correct` is capped and `random` drawn at the PRM filter's count, so the "
         "arms differ in which samples they keep, not in how many. Greedy accuracy on the "
         f"first {d.eval.num_problems} problems of each split.", ""]
  rows, series = [], {}
  for arm, by_seed in runs.items():
    if not by_seed:
      continue
    accs = {s: [r["accuracy"].get(s) for r in by_seed.values()] for s in splits}
    series[LABELS[arm]] = accs
    sel = [r.get("selection") for r in by_seed.values() if r.get("selection")]
    kept = ablation.fmt([x["kept"] for x in sel], 0) if sel else ""
    kept_ok = ablation.fmt([x["kept_correct_fraction"] for x in sel], 2) if sel else ""
    step_ok = ablation.fmt([x["kept_step_validity"] for x in sel], 2) if sel else ""
    rows.append([LABELS[arm], len(by_seed), kept, kept_ok, step_ok]
                + [ablation.fmt(accs[s]) for s in splits])
  md += [report.markdown_table(["arm", "seeds", "kept", "kept correct", "kept steps valid"]
                               + splits, rows), ""]
  # The claim: the verifier's filter beats random samples and answer-only filtering.
  paired, stats = ablation.paired_table(
      runs, [("prm_topk", "random"), ("prm_topk", "correct"), ("correct", "random")]
      + [(arm, "SFT") for arm in config.arms], splits, LABELS)
  md += paired
  md += ablation.save_bars(out, splits, series, "self-distillation filters at matched data size",
                           "accuracy by filter")
  ablation.write_result(out, md, {"runs": runs, "paired": stats}, config, workdir)
