"""results/testbed.{md,json,png}: SFT learning curves of the options tried for the
pipeline's policy, from the runs' workdirs (configs/testbed.py, `train.eval_every`).

Reads only what the runs saved (config.json, metrics.jsonl `curve/...`, eval/summary.json,
launches.jsonl), so the report regenerates without computing anything. The option kept is
picked in code: the most fully valid in-distribution chains at the last curve point, then
accuracy.
"""
from __future__ import annotations

import json
import os

from s2jax import report
from s2jax.metrics import latest_per_step, read_metrics

# The config keys that tell the options apart (shown in the table when they differ).
KEYS = ("data.format", "eval.calculator", "data.tool_tokens", "train.steps", "train.batch_size",
        "optim.lr", "model.d_model", "model.n_layers", "model.mlp_dim", "data.num_train")


def _get(cfg: dict, dotted: str):
  for k in dotted.split("."):
    cfg = cfg.get(k, {}) if isinstance(cfg, dict) else {}
  return None if cfg == {} else cfg


def load_run(workdir: str) -> dict:
  with open(os.path.join(workdir, "config.json")) as f:
    cfg = json.load(f)
  curve = latest_per_step([m for m in read_metrics(os.path.join(workdir, "metrics.jsonl"))
                           if "curve/accuracy" in m])
  summary_path = os.path.join(workdir, "eval", "summary.json")
  final = None
  if os.path.exists(summary_path):
    with open(summary_path) as f:
      final = json.load(f)
  return {"name": os.path.basename(os.path.normpath(workdir)), "workdir": workdir,
          "options": {k: _get(cfg, k) for k in KEYS}, "curve": curve, "final": final,
          "launches": report.read_launches(workdir),
          "finished": os.path.exists(os.path.join(workdir, "eval", "summary.json"))}


def depths(runs: list) -> list:
  return sorted({int(k[len("curve/steps"):].split("/")[0]) for r in runs for m in r["curve"]
                 for k in m if k.startswith("curve/steps") and k.endswith("/accuracy")})


def best(runs: list) -> dict:
  """The option kept: most fully valid chains at its last curve point, then accuracy."""
  scored = [r for r in runs if r["curve"]]
  return max(scored, key=lambda r: (r["curve"][-1]["curve/fully_valid"],
                                    r["curve"][-1]["curve/accuracy"]))


def write_report(runs: list, out: str, command: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
  with open(out + ".json", "w") as f:
    json.dump({"command": command, "runs": runs}, f, indent=2)
  ds = depths(runs)
  varying = [k for k in KEYS if len({json.dumps(r["options"][k]) for r in runs}) > 1]
  kept = best(runs)
  md = ["# Testbed: SFT learning curves for the pipeline's policy", "",
        f"Machine-written by `{command}` from the runs' workdirs. Each curve point is greedy "
        "accuracy and the fraction of fully valid chains (every step passes the strict "
        "checker and the answer is right) on the same first in-distribution test problems.",
        ""]
  rows = []
  for r in runs:
    last = r["curve"][-1] if r["curve"] else {}
    secs = sum(x["seconds"] for x in r["launches"])
    commits = sorted({x["commit"] for x in r["launches"]})
    rows.append([r["name"]] + [str(r["options"][k]) for k in varying]
                + [str(last.get("step", "")), str(last.get("curve/n", "")),
                   f"{last.get('curve/accuracy', float('nan')):.3f}",
                   f"{last.get('curve/fully_valid', float('nan')):.3f}"]
                + [f"{last.get(f'curve/steps{d}/accuracy', float('nan')):.2f}" for d in ds]
                + [f"{secs / 60:.1f}" + ("" if r["finished"] else " (unfinished)"),
                   ", ".join(f"`{c[:12]}`" + (" dirty" if c.endswith("dirty") else "")
                             for c in commits)])
  md += ["## Options at their last curve point", "",
         report.markdown_table(["option"] + varying + ["step", "n", "accuracy", "fully valid"]
                               + [f"acc. {d} steps" for d in ds] + ["wall min", "commit"],
                               rows), "",
         f"Kept (most fully valid chains, then accuracy): **{kept['name']}**.", "",
         "Wall minutes are the sum of the run's launches, including its curve evaluations; "
         "runs launched two at a time, one per core, so they are slower than one run alone.",
         ""]
  md += ["## Learning curves (accuracy / fully valid)", ""]
  steps = sorted({m["step"] for r in runs for m in r["curve"]})
  md += [report.markdown_table(
      ["step"] + [r["name"] for r in runs],
      [[str(s)] + [next((f"{m['curve/accuracy']:.3f} / {m['curve/fully_valid']:.3f}"
                         for m in r["curve"] if m["step"] == s), "") for r in runs]
       for s in steps]), ""]
  finals = [r for r in runs if r["final"]]
  if finals:
    splits = list(finals[0]["final"])
    md += ["## Every split after training (greedy, all evaluation problems)", "",
           report.markdown_table(
               ["option"] + [f"{s} acc. / valid" for s in splits],
               [[r["name"]] + [f"{r['final'][s]['accuracy']:.3f} / "
                               f"{r['final'][s]['fully_valid']:.3f}" for s in splits]
                for r in finals]), ""]
    md += ["By number of steps (accuracy):", ""]
    for s in splits:
      ks = sorted({k for r in finals for k in r["final"][s]["by_num_steps"]}, key=int)
      md += [f"`{s}`:", "", report.markdown_table(
          ["option"] + [f"{k} steps" for k in ks],
          [[r["name"]] + [f"{r['final'][s]['by_num_steps'][k]['accuracy']:.2f}"
                          if k in r["final"][s]["by_num_steps"] else "" for k in ks]
           for r in finals]), ""]
  md += ["![learning curves](" + os.path.basename(out) + ".png)", ""]
  with open(out + ".md", "w") as f:
    f.write("\n".join(md))

  panels = [("curve/accuracy", "accuracy"), ("curve/fully_valid", "fully valid")] + [
      (f"curve/steps{d}/accuracy", f"accuracy, {d}-step problems") for d in ds]
  fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2), squeeze=False)
  for ax, (key, title) in zip(axes[0], panels):
    for r in runs:
      pts = [(m["step"], m[key]) for m in r["curve"] if key in m]
      if pts:
        ax.plot(*zip(*pts), marker="o", ms=3, label=r["name"])
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("SFT step")
    ax.set_ylim(0, 1)
  axes[0][0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(out + ".png", dpi=110)
  plt.close(fig)
