"""results/pipeline/seeds.{md,json}: the main job over seeds against the testbed's targets,
and each later stage against SFT pooled over the seeds, from each seed's saved
metrics.json (s2jax.pipeline.gather).

The targets (issue "a testbed with signal"), checked in code: the whole pipeline within
30 minutes; SFT greedy accuracy in-distribution at least 0.60 and fully valid chains at
least 0.50; PRM step AUROC in-distribution at least 0.90 on at least 200 valid and 200
invalid held-out policy steps.
"""
from __future__ import annotations

import json
import os

from s2jax import report
from s2jax.metrics import wilson_interval

TARGETS = {"minutes": 30.0, "sft_accuracy": 0.60, "sft_fully_valid": 0.50, "prm_auroc": 0.90,
           "prm_steps_per_class": 200}
SPLIT = "test"  # in-distribution


def check(metrics: dict) -> dict:
  """Each target's measured value and whether it is met."""
  from s2jax.pipeline import total_minutes
  v = metrics.get("verifier", {}).get(SPLIT, {})
  got = {"minutes": total_minutes(metrics),
         "sft_accuracy": metrics["accuracy"]["SFT"][SPLIT],
         "sft_fully_valid": metrics["fully_valid"]["SFT"][SPLIT],
         "prm_auroc": v.get("auroc"), "prm_auroc_ci": v.get("auroc_ci"),
         "prm_same_index_auroc": v.get("same_index_auroc"),
         "prm_valid_steps": v.get("valid_steps", 0), "prm_invalid_steps": v.get("invalid_steps", 0)}
  enough = min(got["prm_valid_steps"], got["prm_invalid_steps"]) >= TARGETS["prm_steps_per_class"]
  met = {"minutes": got["minutes"] <= TARGETS["minutes"],
         "sft_accuracy": got["sft_accuracy"] >= TARGETS["sft_accuracy"],
         "sft_fully_valid": got["sft_fully_valid"] >= TARGETS["sft_fully_valid"],
         "prm_auroc": enough and got["prm_auroc"] is not None
         and got["prm_auroc"] >= TARGETS["prm_auroc"]}
  return {"value": got, "met": met}


def pooled_against_sft(runs: dict) -> tuple[list, dict]:
  """Report lines and numbers: each later policy against SFT on each split, pooled over the
  seeds whose two policies were graded on the same problems (stats.compare_pooled: a
  stratified bootstrap over seeds and problems); the table says how many seeds each row
  pools, so a seed without the pair is visible, not silently dropped."""
  from s2jax import stats
  from s2jax.pipeline import pairs_with_sft
  pairs = {}
  for m in runs.values():
    for policy, split, ref, got in pairs_with_sft(m):
      pairs.setdefault((policy, split), []).append((ref, got))
  rows, data = [], {}
  for (policy, split), p in pairs.items():
    c = stats.compare_pooled(p)
    data.setdefault(policy, {})[split] = c
    rows.append([policy, split, f"{c['n']} ({c['seeds']} of {len(runs)} seeds)",
                 *report.pooled_cells(c)])
  if not rows:
    return [], data
  return ["## Each stage against SFT, pooled over seeds", "",
          "Accuracy difference on the same problems, pooled over seeds (stratified bootstrap "
          "over seeds and problems, 95% interval); the verdict comes from the interval, and "
          "a null one states the smallest effect the pooled n could detect with 80% power.",
          "", report.markdown_table(["policy", "split", "n (seeds)", *report.POOLED_COLUMNS],
                                    rows),
          ""], data


def write(runs: dict, out: str, command: str) -> None:
  """`runs`: {seed name: gathered metrics}."""
  checks = {name: check(m) for name, m in runs.items()}
  pooled_lines, pooled = pooled_against_sft(runs)
  # The commits the seeds' launches ran at (pipeline.gather), "-dirty" where code differed.
  run_commits = {name: m.get("commits") or [m.get("run_info", {}).get("commit", "?")]
                 for name, m in runs.items()}
  info = report.run_info()
  os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
  with open(out + ".json", "w") as f:
    json.dump({"command": command, "run_info": info, "targets": TARGETS,
               "checks": checks, "run_commits": run_commits, "against_sft_pooled": pooled},
              f, indent=2)

  def mark(ok):
    return "✓" if ok else "✗"
  rows = []
  for name, c in checks.items():
    v, m = c["value"], c["met"]
    n = runs[name]["config"]["sft"]["data"]["num_eval"]
    lo, hi = wilson_interval(round(v["sft_accuracy"] * n), n)
    ci = v.get("prm_auroc_ci")
    auroc = "—" if v["prm_auroc"] is None else f"{v['prm_auroc']:.3f}" + (
        f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
    same = v.get("prm_same_index_auroc")
    same = "—" if same is None else f"{same:.3f}"
    rows.append([name, f"{v['minutes']:.1f} {mark(m['minutes'])}",
                 f"{v['sft_accuracy']:.3f} [{lo:.2f}, {hi:.2f}] {mark(m['sft_accuracy'])}",
                 f"{v['sft_fully_valid']:.3f} {mark(m['sft_fully_valid'])}",
                 f"{auroc} ({v['prm_valid_steps']} valid / {v['prm_invalid_steps']} invalid) "
                 f"{mark(m['prm_auroc'])}", same])
  splits = list(next(iter(runs.values()))["accuracy"]["SFT"])
  acc_rows = [[name] + [f"{m['accuracy']['SFT'][s]:.3f} / {m['fully_valid']['SFT'][s]:.3f}"
                        for s in splits] for name, m in runs.items()]
  all_met = all(all(c["met"].values()) for c in checks.values())
  md = ["# The main job over seeds, against the testbed's targets", "",
        f"Machine-written by `{command}` from each seed's metrics.json (each seed's own "
        "report is its pipeline's REPORT.md). Targets: the whole pipeline ≤ "
        f"{TARGETS['minutes']:.0f} min; SFT greedy accuracy in-distribution ≥ "
        f"{TARGETS['sft_accuracy']} and fully valid chains ≥ {TARGETS['sft_fully_valid']}; "
        f"PRM step AUROC in-distribution ≥ {TARGETS['prm_auroc']} on ≥ "
        f"{TARGETS['prm_steps_per_class']} valid and invalid held-out policy steps.", "",
        f"- written at git commit `{info['commit']}`, {info['started']}",
        "- the seeds' launches ran at: " + "; ".join(
            f"{name} " + ", ".join(f"`{c[:12]}`" + (" dirty" if c.endswith("-dirty") else "")
                                   for c in commits)
            for name, commits in run_commits.items()), "",
        report.markdown_table(["seed", "minutes (all launches)", "SFT accuracy [95% Wilson]",
                               "SFT fully valid", "PRM step AUROC [95% CI] (held-out steps)",
                               "PRM same-index AUROC"], rows), "",
        "(Same-index AUROC compares valid and invalid steps at the same step index only: "
        "a PRM that learned that late steps are wrong scores 0.5 there.)", "",
        f"Every target met on every seed: **{'yes' if all_met else 'no'}**.", "",
        "SFT (the shipped base policy as the pipeline evaluates it) on every split, "
        "accuracy / fully valid:", "",
        report.markdown_table(["seed"] + splits, acc_rows), "", *pooled_lines]
  with open(out + ".md", "w") as f:
    f.write("\n".join(md))
