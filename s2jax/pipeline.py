"""The main job: SFT → verifier → self-distillation → PPO → search, then a report.

  python experiments/pipeline.py --config=configs/pipeline.py --workdir=workdirs/pipeline \
      --out=results/pipeline

Every stage is its own script's `run` on its own workdir (<workdir>/<stage>), with the
stage-to-stage paths filled in. A stage whose workdir finished is skipped, an unfinished
one resumes from its checkpoints, so re-running the same command after an interruption
continues where it stopped. At the end the stage outputs are gathered into
<workdir>/metrics.json and the report (<out>/REPORT.md, metrics.json, *.png) is written
from them; `--report_from=<metrics.json>` rewrites the report without any compute.
"""
from __future__ import annotations

import json
import os


import jax
import ml_collections
from absl import logging

from s2jax import compute, report, verifier_metrics
from s2jax.metrics import latest_per_step, read_metrics

STAGES = ("sft", "verifier", "distill", "ppo", "search")
POLICY_STAGES = ("sft", "distill", "ppo")
# The library module (s2jax/stages/<module>.py) whose `run(config, workdir)` runs a stage.
STAGE_MODULES = {"sft": "sft", "verifier": "verifier", "distill": "distill", "ppo": "rl",
                 "search": "search"}
NEEDS = {"verifier": ("sft",), "distill": ("sft", "verifier"), "ppo": ("sft", "verifier"),
         "search": ("verifier",)}


def validate(config) -> None:
  unknown = [s for s in config.stages if s not in STAGES]
  if unknown:
    raise ValueError(f"config: stages={tuple(config.stages)!r} names unknown stage(s) "
                     f"{unknown}; known: {STAGES}")
  for stage in config.stages:
    missing = [n for n in NEEDS.get(stage, ()) if n not in config.stages]
    if missing:
      raise ValueError(f"config: stage {stage!r} needs {missing} in stages={tuple(config.stages)}")
  if "search" in config.stages and not search_policy(config):
    raise ValueError("config: search needs one of search_policy="
                     f"{tuple(config.search_policy)} in stages")


def search_policy(config) -> str:
  return next((s for s in config.search_policy if s in config.stages), "")


def stage_dir(workdir: str, stage: str) -> str:
  return os.path.join(workdir, stage)


def policy_dir(workdir: str, stage: str, config) -> str:
  """Where the policy a stage produced lives (a distillation's last round)."""
  if stage == "distill":
    return os.path.join(stage_dir(workdir, stage), f"round_{config.distill.rounds}")
  return stage_dir(workdir, stage)


def stage_config(config, stage: str, workdir: str) -> ml_collections.ConfigDict:
  """The stage's own config with the seed and the paths to earlier stages filled in."""
  c = ml_collections.ConfigDict(config[stage].to_dict())
  c.seed = config.seed
  if stage in ("verifier", "distill", "ppo"):
    c.policy_workdir = os.path.abspath(stage_dir(workdir, "sft"))
  if stage in ("distill", "ppo"):
    c.prm_workdir = os.path.abspath(stage_dir(workdir, "verifier"))
  if stage == "search":
    c.policy_workdir = os.path.abspath(policy_dir(workdir, search_policy(config), config))
    c.prm_workdir = os.path.abspath(stage_dir(workdir, "verifier"))
  return c


def run_stage(stage: str, c, workdir: str) -> None:
  # Imported here: importing every stage module costs seconds.
  import importlib
  module = importlib.import_module(f"s2jax.stages.{STAGE_MODULES[stage]}")
  module.run(c, workdir)
  if stage == "search":  # the search stage writes no checkpoints that mark it finished
    report.mark_done(workdir)


# Earlier configs of a workdir that was re-launched with another one, one JSON line each.
CONFIG_HISTORY = "config_history.jsonl"


def write_config(workdir: str, config) -> None:
  """config.json of this launch; a re-launch with another config first appends the earlier
  one to CONFIG_HISTORY, so the report can say the runs behind it differ."""
  path, new = os.path.join(workdir, "config.json"), config.to_json_best_effort(indent=2)
  if os.path.exists(path):
    with open(path) as f:
      old = f.read()
    if json.loads(old) != json.loads(new):
      with open(os.path.join(workdir, CONFIG_HISTORY), "a") as f:
        f.write(json.dumps({"replaced": report.run_info()["started"],
                            "config": json.loads(old)}) + "\n")
  with open(path, "w") as f:
    f.write(new)


def run(config, workdir: str) -> dict:
  """Every stage in order (finished ones skipped); returns the gathered metrics."""
  validate(config)
  os.makedirs(workdir, exist_ok=True)
  write_config(workdir, config)
  for stage in config.stages:
    d = stage_dir(workdir, stage)
    if report.is_done(d):
      logging.warning("pipeline: %s finished before (%s), skipped", stage, d)
      continue
    print(f"== pipeline stage {stage} -> {d}", flush=True)
    # Every launch of every stage, failed and interrupted ones included, with its time.
    with report.launch(workdir, stage):
      run_stage(stage, stage_config(config, stage, workdir), d)
  metrics = gather(config, workdir)
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "metrics.json"), "w") as f:
      json.dump(metrics, f, indent=2)
  return metrics


def _json(path: str):
  with open(path) as f:
    return json.load(f)


def pairs_with_sft(metrics: dict):
  """(policy, split, SFT's per-problem correctness, the policy's) for every later policy
  and split graded on the same problems as SFT (the same number of them: each split's
  first problems); a pair on other problems is left out."""
  per = metrics.get("per_problem") or {}
  base = per.get("SFT") or {}
  for policy, splits in per.items():
    if policy == "SFT":
      continue
    for split, got in (splits or {}).items():
      ref = base.get(split)
      if got and ref and len(got["correct"]) == len(ref["correct"]):
        yield policy, split, ref["correct"], got["correct"]


def paired_against_sft(metrics: dict) -> list:
  """Report lines: each later policy against the SFT policy on the same problems of each
  split, accuracy difference with its 95% paired bootstrap interval, n, the exact McNemar
  p and the verdict the interval allows (s2jax.stats.compare)."""
  from s2jax import stats
  rows = []
  for policy, split, ref, got in pairs_with_sft(metrics):
    c = stats.compare(ref, got)
    rows.append([policy, split, str(c["n"]), *report.comparison_cells(c),
                 f"{c['mcnemar_p']:.3g}", c["verdict"]])
  if not rows:
    return []
  return ["Each policy against SFT on the same problems (paired 95% bootstrap interval of "
          "the accuracy difference; the verdict comes from the interval):", "",
          report.markdown_table(["policy", "split", "n", "accuracy", "difference [95% CI]",
                                 "McNemar p", "verdict"], rows), ""]


def gather(config, workdir: str) -> dict:
  """Everything the report shows, read from the stage workdirs (a plain dict)."""
  stages = list(config.stages)
  launches = report.read_launches(workdir)
  run_info = {k: launches[0][k] for k in ("command", "commit", "started")} if launches else {}
  out = {"run_info": run_info, "config": config.to_dict(), "launches": launches,
         "stages": stages,
         "seconds": {s: sum(r["seconds"] for r in launches if r["what"] == s) or None
                     for s in stages},
         "accuracy": {}, "fully_valid": {}, "per_problem": {}, "compute": {},
         "commits": sorted({r["commit"] for r in launches}),
         "earlier_configs": len(read_metrics(os.path.join(workdir, CONFIG_HISTORY)))
         if os.path.exists(os.path.join(workdir, CONFIG_HISTORY)) else 0}
  sft_dir = stage_dir(workdir, "sft")
  if "sft" in stages:
    summary = _json(os.path.join(sft_dir, "eval", "summary.json"))
    out["accuracy"]["SFT"] = {k: v["accuracy"] for k, v in summary.items()}
    out["fully_valid"]["SFT"] = {k: v["fully_valid"] for k, v in summary.items()}
    out["per_problem"]["SFT"] = {k: v.get("per_problem") for k, v in summary.items()}
    out["by_num_steps"] = {k: {n: s["accuracy"] for n, s in v["by_num_steps"].items()}
                           for k, v in summary.items()}
    out["sft_loss"] = [(m["step"], m["loss"]) for m in latest_per_step(
        [m for m in read_metrics(os.path.join(sft_dir, "metrics.jsonl")) if "loss" in m])]
    out["compute"]["sft"] = compute.sft_passes(sft_dir)
    if config.sft.get("init_from"):
      out["compute"]["base policy (trained once)"] = compute.base_policy_passes(sft_dir)
  if "verifier" in stages:
    d = stage_dir(workdir, "verifier")
    summary = _json(os.path.join(d, "eval", "summary.json"))
    kept = ("auroc", "auroc_ci", "valid_steps", "invalid_steps", "same_index_auroc",
            "solution_auroc", "error_precision", "error_recall", "first_error_accuracy",
            "problem_mean_auroc", "within_problem_auroc", "within_problem_auroc_distinct",
            "process_bench")
    splits = {k: v for k, v in summary.items() if isinstance(v, dict) and "auroc" in v}
    out["verifier"] = {k: {m: v.get(m) for m in kept} for k, v in splits.items()}
    out["verifier_error_kinds"] = {k: v.get("error_kinds", [])[:8] for k, v in splits.items()}
    out["verifier_score_length"] = {k: v.get("score_length") for k, v in splits.items()}
    data = summary.get("data", {})
    out["verifier_data"] = {"label_source": config.verifier.labels.source,
                            **{k: data.get(k) for k in ("valid_steps", "invalid_steps",
                                                        "label_agreement")}}
    out["compute"]["verifier"] = compute.verifier_passes(d)["total"]
  if "distill" in stages:
    rounds = _json(os.path.join(stage_dir(workdir, "distill"), "rounds.json"))["rounds"]
    last = rounds[-1]
    out["accuracy"]["self-distilled"] = {k: v["accuracy"] for k, v in last["eval"].items()}
    out["fully_valid"]["self-distilled"] = {k: v["fully_valid"] for k, v in last["eval"].items()}
    out["per_problem"]["self-distilled"] = {k: v.get("per_problem")
                                            for k, v in last["eval"].items()}
    out["distill_selection"] = last.get("selection", {})
    out["compute"]["distill"] = compute.distill_passes(stage_dir(workdir, "distill"))["total"]
  if "ppo" in stages:
    d = stage_dir(workdir, "ppo")
    evals = read_metrics(os.path.join(d, "eval.jsonl"))
    out["accuracy"]["PPO"] = evals[-1]["accuracy"]
    out["fully_valid"]["PPO"] = evals[-1]["fully_valid"]
    out["per_problem"]["PPO"] = evals[-1].get("per_problem", {})
    its = latest_per_step([m for m in read_metrics(os.path.join(d, "metrics.jsonl"))
                           if "verifier_reward" in m])
    out["ppo_curve"] = [{"iteration": m["step"], "verifier_reward": m["verifier_reward"],
                         "true_accuracy": m.get("true_accuracy"), "kl": m.get("kl")}
                        for m in its]
    out["hacking_alarms"] = sum(bool(m.get("hacking_alarm")) for m in its)
    out["compute"]["ppo"] = compute.ppo_passes(d)["total"]
  if "search" in stages:
    res = _json(os.path.join(stage_dir(workdir, "search"), "search.json"))
    out["search_policy"] = search_policy(config)
    out["search"] = {}
    for split, r in res["splits"].items():
      out["search"][split] = {"greedy": r["greedy"]["accuracy"],
                              **{name: [(x["n"], x["accuracy"], x["tokens"]) for x in xs]
                                 for name, xs in r["methods"].items()},
                              "pass@N": [(x["n"], x["accuracy"], x["tokens"])
                                         for x in r["pass@N"]]}
    n_max = max(config.search.ns)
    label = f"{search_policy(config)} + PRM best-of-{n_max}"
    out["search_method"] = "best-of-N PRM-min"
    out["accuracy"][label] = {
        split: dict((n, a) for n, a, _ in r["best-of-N PRM-min"])[n_max]
        for split, r in out["search"].items()}
  return out


# ----------------------------------------------------------------------------- report

def total_minutes(metrics: dict) -> float:
  """Wall time of the whole run: its pipeline launches (start-up and report included), or
  the stages' sum for a run recorded before launches were."""
  launches = [r for r in metrics.get("launches", []) if r["what"] == "pipeline.py"]
  if launches:
    return sum(r["seconds"] for r in launches) / 60
  return sum(v or 0 for v in metrics["seconds"].values()) / 60


def _ranked(w: dict) -> str:
  if w is None or w["pairs"] == 0:
    return "no problem with both outcomes"
  return f"{w['auroc']:.3f} [{w['ci'][0]:.3f}, {w['ci'][1]:.3f}] ({w['pairs']})"


def _process_bench(p: dict | None) -> str:
  if not p:
    return ""
  return (f"{p['f1']:.3f} ({p['first_error_accuracy']:.3f} on {p['erroneous_chains']} / "
          f"{p['valid_chain_accuracy']:.3f} on {p['valid_chains']})")


def write_report(metrics: dict, out: str) -> None:
  """<out>/REPORT.md, metrics.json and plots, from gathered metrics only."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  import numpy as np
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, "metrics.json"), "w") as f:
    json.dump(metrics, f, indent=2)
  info = metrics["run_info"]
  acc = metrics["accuracy"]
  splits = list(next(iter(acc.values())).keys()) if acc else []
  md = ["# Pipeline: SFT → verifier → self-distillation → PPO → search", "",
        "Machine-written by `experiments/pipeline.py` from the stage workdirs "
        "(regenerate with `--report_from=<this directory>/metrics.json`).", "",
        f"- command: `{info.get('command', '?')}`",
        "- git commits of its launches: " + (", ".join(
            f"`{c[:12]}`" + (" dirty" if c.endswith("-dirty") else "")
            for c in metrics.get("commits", [])) or f"`{info.get('commit', '?')}`"),
        *([f"- **the config changed between launches**: {metrics['earlier_configs']} earlier "
           f"version(s) in the workdir's {CONFIG_HISTORY}"] if metrics.get("earlier_configs")
          else []),
        f"- started: {info.get('started', '?')}, seed {metrics['config']['seed']}",
        "- wall time per stage (s): " + ", ".join(
            f"{s} {metrics['seconds'][s]:.0f}" for s in metrics["stages"]
            if metrics["seconds"].get(s) is not None)
        + f"; total {total_minutes(metrics):.1f} min (every launch, failed ones included)",
        ""]
  sft_task = metrics["config"]["sft"]["task"]
  md += ["## Greedy accuracy after each stage", "",
         f"Training distribution: {sft_task['min_steps']}–{sft_task['max_steps']} steps, "
         f"{sft_task['min_distractors']}–{sft_task['max_distractors']} distractors, template "
         f"families {tuple(sft_task['families'])}. Shifted splits override it: "
         + "; ".join(f"`{k}` {v}" for k, v in metrics["config"]["sft"]["splits"].items())
         + ". Every policy is graded on the same first problems of each split "
         f"({metrics['config']['sft']['data']['num_eval']} for SFT and the later stages, "
         f"{metrics['config']['search']['num_problems']} for search).", ""]
  rows = [[stage] + [f"{acc[stage].get(s, float('nan')):.3f}" for s in splits]
          for stage in acc]
  md += [report.markdown_table(["policy"] + splits, rows), ""]
  if metrics.get("fully_valid"):
    md += ["Fully valid chains (every step checks out, exact checker):", "",
           report.markdown_table(["policy"] + splits,
                                 [[k] + [f"{v.get(s, float('nan')):.3f}" for s in splits]
                                  for k, v in metrics["fully_valid"].items()]), ""]
  md += paired_against_sft(metrics)
  if "verifier" in metrics:
    md += ["## Verifier (PRM) on held-out policy samples", "",
           report.markdown_table(
               ["split", "step AUROC (held-out steps)", "same-index AUROC", "solution AUROC",
                "error precision", "error recall", "first-error accuracy"],
               [[k, verifier_metrics.describe_auroc(v)]
                + [f"{v[m]:.3f}" if v.get(m) is not None else "" for m in
                   ("same_index_auroc", "solution_auroc", "error_precision", "error_recall",
                    "first_error_accuracy")] for k, v in metrics["verifier"].items()]), ""]
  ranking = {k: v for k, v in metrics.get("verifier", {}).items()
             if v.get("within_problem_auroc")}
  if ranking:
    md += ["How the PRM (solution score: its lowest step score) ranks the held-out samples of "
           "one problem, which is what best-of-N and weighted voting use: within-problem "
           "AUROC over every pair of a correct and a wrong sample of the same problem "
           "(95% bootstrap interval over problems; pairs), the same on distinct texts only, "
           "and beside the pooled solution AUROC the pooled AUROC of each problem's mean "
           "score (how much of it is telling problems apart). ProcessBench F1: the harmonic "
           "mean of first-error-step accuracy on chains with an invalid step and accuracy on "
           "fully valid chains, against exact step labels.", "",
           report.markdown_table(
               ["split", "within-problem AUROC (pairs)", "distinct texts (pairs)",
                "solution AUROC", "problem-mean AUROC", "ProcessBench F1 (first error / valid)"],
               [[k, _ranked(v["within_problem_auroc"]),
                 _ranked(v["within_problem_auroc_distinct"]),
                 f"{v['solution_auroc']:.3f}", f"{v['problem_mean_auroc']:.3f}",
                 _process_bench(v.get("process_bench"))] for k, v in ranking.items()]), ""]
  kinds = (metrics.get("verifier_error_kinds") or {}).get("test")
  if kinds:
    md += ["In-distribution invalid steps by the checker's reason (the most common; AUROC of "
           "that kind against every valid step):", "",
           report.markdown_table(["reason", "steps", "mean PRM score", "AUROC vs valid"],
                                 [[k["kind"], k["count"], f"{k['mean_score']:.3f}",
                                   f"{k['auroc_vs_valid']:.3f}"] for k in kinds]), ""]
  corr = metrics.get("verifier_score_length") or {}
  if any(corr.values()):
    md += ["Spearman correlation of a solution's PRM score (min over steps) with its number of "
           "steps: " + "; ".join(f"{k} {v['spearman']:+.2f} (n={v['n']})"
                                 for k, v in corr.items() if v), ""]
  if metrics.get("verifier_data"):
    d = metrics["verifier_data"]
    agree = d.get("label_agreement") or {}
    md += [f"Training labels: source `{d['label_source']}`, {d['valid_steps']} valid and "
           f"{d['invalid_steps']} invalid steps (corrupted references included)"
           + (f"; on the policy's samples they agree with the strict checker on "
              f"{agree['agreement']:.3f} of steps (invalid-class precision "
              f"{agree['invalid_precision']:.3f}, recall {agree['invalid_recall']:.3f})"
              if agree else "") + ".", ""]
  if "distill_selection" in metrics:
    sel = metrics["distill_selection"]
    md += ["## Self-distillation", "",
           f"Filter `{metrics['config']['distill']['filter']['kind']}` kept {sel.get('kept')} "
           f"samples ({sel.get('kept_fraction', 0):.2f} of them); "
           f"{sel.get('kept_correct_fraction', 0):.2f} of the kept have the right answer "
           f"(all samples: {sel.get('sample_accuracy', 0):.2f}).", ""]
  if "ppo_curve" in metrics:
    curve = metrics["ppo_curve"]
    md += ["## PPO", "",
           f"{len(curve)} iterations; verifier reward {curve[0]['verifier_reward']:.3f} → "
           f"{curve[-1]['verifier_reward']:.3f}; reward-hacking alarms: "
           f"{metrics['hacking_alarms']}.", ""]
  if "compute" in metrics:
    md += ["## Training compute (token-passes: forward 1, forward+backward 3)", "",
           report.markdown_table(["stage", "token-passes"],
                                 [[k, f"{v:.3g}"] for k, v in metrics["compute"].items()]), ""]
  if "search" in metrics:
    md += [f"## Search on the {metrics['search_policy']} policy", ""]
    for split, r in metrics["search"].items():
      methods = [k for k in r if k not in ("greedy",)]
      ns = [n for n, _, _ in r["majority vote"]]
      md += [f"`{split}` (greedy {r['greedy']:.3f}):", "",
             report.markdown_table(["method"] + [f"N={n}" for n in ns],
                                   [[m] + [f"{a:.3f}" for _, a, _ in r[m]]
                                    for m in methods if len(r[m]) == len(ns)]), ""]

  # Plot 1: accuracy per split after each stage.
  fig, ax = plt.subplots(figsize=(1.8 + 1.6 * max(len(splits), 1), 3.6))
  width = 0.8 / max(len(acc), 1)
  for i, (stage, row) in enumerate(acc.items()):
    ax.bar(np.arange(len(splits)) + i * width, [row.get(s, 0) for s in splits], width,
           label=stage)
  ax.set_xticks(np.arange(len(splits)) + 0.4 - width / 2, splits, fontsize=8)
  ax.set_ylabel("greedy accuracy")
  ax.legend(fontsize=7)
  ax.set_title("accuracy after each stage")
  fig.tight_layout()
  fig.savefig(os.path.join(out, "accuracy.png"), dpi=120)
  plt.close(fig)
  md += ["![accuracy after each stage](accuracy.png)", ""]

  # Plot 2: training curves (SFT loss, PPO reward and rollout accuracy).
  panels = [k for k in ("sft_loss", "ppo_curve") if metrics.get(k)]
  if panels:
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, k in zip(axes[0], panels):
      if k == "sft_loss":
        ax.plot(*zip(*metrics[k]))
        ax.set_xlabel("SFT step")
        ax.set_ylabel("loss")
        ax.set_yscale("log")
      else:
        its = [m["iteration"] for m in metrics[k]]
        ax.plot(its, [m["verifier_reward"] for m in metrics[k]], label="verifier reward")
        ax.plot(its, [m["true_accuracy"] for m in metrics[k]], label="rollout accuracy (exact)")
        ax.set_xlabel("PPO iteration")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "training.png"), dpi=120)
    plt.close(fig)
    md += ["![training curves](training.png)", ""]
  if metrics.get("launches"):
    md += ["## Launches", "", "Every launch of the pipeline and of each stage, failed and "
           "killed ones included (the workdir's launches.jsonl); a stage's wall time above "
           "is the sum of its launches.", "",
           report.launches_table(metrics["launches"]), ""]
  with open(os.path.join(out, "REPORT.md"), "w") as f:
    f.write("\n".join(md))
