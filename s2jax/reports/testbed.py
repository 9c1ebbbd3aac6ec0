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
KEYS = ("seed", "init_from", "data.format", "eval.calculator", "data.tool_tokens", "train.steps", "train.batch_size",
        "optim.lr", "model.d_model", "model.n_layers", "model.mlp_dim", "data.num_train")


def _get(cfg: dict, dotted: str):
  for k in dotted.split("."):
    cfg = cfg.get(k, {}) if isinstance(cfg, dict) else {}
  return None if cfg == {} else cfg


def load_run(workdir: str, name: str = "") -> dict:
  """A run's curve, final evaluation and launches from its workdir. A run that starts
  from a shipped policy (`init_from`) counts its steps from where that policy's training
  ended (`start_step`), so a continued run extends the curve it continues."""
  with open(os.path.join(workdir, "config.json")) as f:
    cfg = json.load(f)
  curve = latest_per_step([m for m in read_metrics(os.path.join(workdir, "metrics.jsonl"))
                           if "curve/accuracy" in m])
  summary_path = os.path.join(workdir, "eval", "summary.json")
  final, outcomes = None, {}
  if os.path.exists(summary_path):
    with open(summary_path) as f:
      final = json.load(f)
    for split in final:  # per problem, for paired comparisons: (num_steps, correct)
      with open(os.path.join(workdir, "eval", f"{split}.jsonl")) as f:
        rows = [json.loads(line) for line in f if line.strip()]
      outcomes[split] = {"question": [r["question"] for r in rows],
                         "num_steps": [r["num_steps"] for r in rows],
                         "correct": [bool(r["correct"]) for r in rows],
                         "fully_valid": [bool(r["fully_valid"]) for r in rows]}
  points = {}  # step -> per-problem outcomes of the curve's problems (curve/step<N>.json)
  curve_dir = os.path.join(workdir, "curve")
  for f in sorted(os.listdir(curve_dir)) if os.path.isdir(curve_dir) else []:
    with open(os.path.join(curve_dir, f)) as fh:
      point = json.load(fh)
    points[str(point["step"])] = point["per_problem"]
  return {"name": name or os.path.basename(os.path.normpath(workdir)), "workdir": workdir,
          "options": {k: _get(cfg, k) for k in KEYS}, "curve": curve, "final": final,
          "outcomes": outcomes, "start_step": start_step(cfg), "curve_outcomes": points,
          "launches": launches(workdir),
          "finished": os.path.exists(os.path.join(workdir, "eval", "summary.json"))}


def start_step(cfg: dict) -> int:
  """The SFT steps behind a run's starting weights: those of the shipped policy it starts
  from (and of the one that policy started from), or 0."""
  name = cfg.get("init_from", "")
  if not name:
    return 0
  from s2jax import base_policy
  trained = base_policy.load(name).meta["config"]
  return start_step(trained) + int(trained["train"]["steps"])


def total_step(run: dict, point: dict) -> int:
  return run.get("start_step", 0) + point["step"]


def load_stored(path: str) -> list:
  """The runs of an earlier report's JSON, for runs whose workdirs are gone."""
  with open(path) as f:
    return json.load(f)["runs"]


def plateau(run: dict, fraction: float = 0.25, tolerance: float = 0.01) -> dict | None:
  """Over the run's last `fraction` of steps: the paired change in greedy accuracy and
  fully valid chains on the curve's problems, from the curve point at the start of that
  stretch (the nearest at or before it) to the last, with its 95% bootstrap interval; flat
  when the accuracy changes by at most `tolerance`. None without per-problem curve points."""
  from s2jax import stats
  pts = {int(k): v for k, v in run.get("curve_outcomes", {}).items()}
  if len(pts) < 2:
    return None
  last = max(pts)
  want = last - fraction * run["options"]["train.steps"]
  first = max((s for s in pts if s <= want), default=min(pts))
  out = {"from_step": first, "to_step": last, "tolerance": tolerance}
  for m in ("correct", "fully_valid"):
    out[m] = stats.paired_difference(pts[first][m], pts[last][m])
  out["flat"] = abs(out["correct"]["difference"]) <= tolerance
  start = min(pts)  # where the run began (step 0 of a run from given weights)
  out["from_start"] = {"from_step": start, "to_step": last,
                       **{m: stats.paired_difference(pts[start][m], pts[last][m])
                          for m in ("correct", "fully_valid")}}
  out["gains"] = [{"from_step": a, "to_step": b,
                   **stats.paired_difference(pts[a]["correct"], pts[b]["correct"])}
                  for a, b in zip(sorted(pts), sorted(pts)[1:])]
  return out


def launches(workdir: str) -> list:
  """The run's launches; a run from before launches were recorded gets one, from its
  run_info.json and the span of its metrics.jsonl timestamps (status "recorded")."""
  got = report.read_launches(workdir)
  if got or not os.path.exists(os.path.join(workdir, "run_info.json")):
    return got
  with open(os.path.join(workdir, "run_info.json")) as f:
    info = json.load(f)
  times = [m["time"] for m in read_metrics(os.path.join(workdir, "metrics.jsonl"))]
  return [{**info, "what": "sft.py", "status": "recorded",
           "seconds": max(times) - min(times) if times else 0.0}]


def depths(runs: list) -> list:
  return sorted({int(k[len("curve/steps"):].split("/")[0]) for r in runs for m in r["curve"]
                 for k in m if k.startswith("curve/steps") and k.endswith("/accuracy")})


def best(runs: list) -> dict:
  """The option kept: among the runs of the most common length (equal compute), the most
  fully valid chains at the last curve point, then accuracy."""
  lengths = [r["options"]["train.steps"] for r in runs if r["curve"]]
  common = max(set(lengths), key=lengths.count)
  scored = [r for r in runs if r["curve"] and r["options"]["train.steps"] == common]
  return max(scored, key=lambda r: (r["curve"][-1]["curve/fully_valid"],
                                    r["curve"][-1]["curve/accuracy"]))


def compare(a: dict, b: dict) -> dict:
  """b against a on every split's final evaluation (the same problems): the paired
  difference in accuracy and in fully valid chains, overall and by number of steps."""
  from s2jax import stats
  out = {}
  for split in a["outcomes"]:
    oa, ob = a["outcomes"][split], b["outcomes"][split]
    if oa["question"] != ob["question"]:
      raise ValueError(f"{a['name']} and {b['name']} were evaluated on different {split} "
                       "problems; paired comparisons need the same ones")
    res = {m: stats.paired_difference(oa[m], ob[m]) for m in ("correct", "fully_valid")}
    by = {}
    for k in sorted(set(oa["num_steps"])):
      idx = [i for i, n in enumerate(oa["num_steps"]) if n == k]
      by[str(k)] = stats.paired_difference([oa["correct"][i] for i in idx],
                                           [ob["correct"][i] for i in idx])
    out[split] = {**res, "by_num_steps": by}
  return out


def _diff(d: dict) -> str:
  return (f"{d['difference']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}] "
          f"{_verdict(d['ci'])}")


def _verdict(ci) -> str:
  from s2jax import stats
  v = stats.verdict(ci, better="better", worse="worse")
  return f"({v})" if v in ("better", "worse") else v


def write_report(runs: list, out: str, command: str, pairs: tuple = ()) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
  ds = depths(runs)
  varying = [k for k in KEYS if len({json.dumps(r["options"].get(k)) for r in runs}) > 1]
  kept = best(runs)
  md = ["# Testbed: SFT learning curves for the pipeline's policy", "",
        f"Machine-written by `{command}` from the runs' workdirs. Each curve point is greedy "
        "accuracy and the fraction of fully valid chains (every step passes the strict "
        "checker and the answer is right) on the first in-distribution test problems of the "
        "run's seed (the same problems for runs of one seed).", ""]
  rows = []
  for r in runs:
    last = r["curve"][-1] if r["curve"] else {}
    secs = sum(x["seconds"] for x in r["launches"])
    commits = sorted({x["commit"] for x in r["launches"]})
    rows.append([r["name"]] + [str(r["options"].get(k)) for k in varying]
                + [str(total_step(r, last) if last else ""), str(last.get("curve/n", "")),
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
  md += ["## Learning curves (accuracy / fully valid)", "",
          "Steps count from the start of SFT: a run continued from a shipped policy starts "
          "where that policy's training ended. Problems per point: " + ", ".join(
              f"{r['name']} {r['curve'][-1]['curve/n']}" for r in runs if r["curve"]) + ".",
          ""]
  steps = sorted({total_step(r, m) for r in runs for m in r["curve"]})
  md += [report.markdown_table(
      ["step"] + [r["name"] for r in runs],
      [[str(s)] + [next((f"{m['curve/accuracy']:.3f} / {m['curve/fully_valid']:.3f}"
                         for m in r["curve"] if total_step(r, m) == s), "") for r in runs]
       for s in steps]), ""]
  plateaus = {r["name"]: plateau(r) for r in runs}
  for name, p in plateaus.items():
    if p is None:
      continue
    run = next(r for r in runs if r["name"] == name)
    off = run.get("start_step", 0)
    md += [f"## {name}: is the curve flat over its last quarter?", "",
           f"Greedy accuracy and fully valid chains on the same {p['correct']['n']} "
           f"held-out problems at step {off + p['from_step']} and at step "
           f"{off + p['to_step']} (the last point), paired, with 95% bootstrap intervals "
           "(s2jax.stats).", "",
           report.markdown_table(["measure", f"step {off + p['from_step']}",
                                  f"step {off + p['to_step']}", "change [95% CI]"],
                                 [[label, f"{p[m]['a']:.3f}", f"{p[m]['b']:.3f}", _diff(p[m])]
                                  for m, label in (("correct", "accuracy"),
                                                   ("fully_valid", "fully valid"))]), "",
           f"Flat within ±{p['tolerance']:.2f} (accuracy): **{'yes' if p['flat'] else 'no'}**.",
           "", f"From the first curve point (step {off + p['from_start']['from_step']}) to "
           f"the last, on the same problems: accuracy {_diff(p['from_start']['correct'])}, "
           f"fully valid {_diff(p['from_start']['fully_valid'])}.", "",
           "Accuracy gained between consecutive curve points:", "",
           report.markdown_table(["steps", "change [95% CI]", "n"],
                                 [[f"{off + g['from_step']} → {off + g['to_step']}", _diff(g),
                                   str(g["n"])] for g in p["gains"]]), ""]
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
  by_name = {r["name"]: r for r in runs}
  comparisons = {f"{b} vs {a}": compare(by_name[a], by_name[b]) for a, b in pairs}
  for title, c in comparisons.items():
    splits = list(c)
    md += [f"## {title}: paired differences on the same problems", "",
           "The second minus the first, with a 95% paired bootstrap interval (s2jax.stats); "
           f"n = {c[splits[0]]['correct']['n']} problems per split.", "",
           report.markdown_table(
               ["split", "accuracy", "fully valid"],
               [[s, _diff(c[s]["correct"]), _diff(c[s]["fully_valid"])] for s in splits]), "",
           "Accuracy by number of steps:", "",
           report.markdown_table(
               ["split"] + [f"{k} steps" for k in c[splits[0]]["by_num_steps"]],
               [[s] + [f"{d['difference']:+.2f} [{d['ci'][0]:+.2f}, {d['ci'][1]:+.2f}] "
                       f"(n={d['n']})" for d in c[s]["by_num_steps"].values()]
                for s in splits if list(c[s]["by_num_steps"]) == list(
                    c[splits[0]]["by_num_steps"])]), ""]
    for s in splits:
      if list(c[s]["by_num_steps"]) != list(c[splits[0]]["by_num_steps"]):
        md += [f"`{s}` by number of steps: " + ", ".join(
            f"{k}: {d['difference']:+.2f} [{d['ci'][0]:+.2f}, {d['ci'][1]:+.2f}] (n={d['n']})"
            for k, d in c[s]["by_num_steps"].items()), ""]
  with open(out + ".json", "w") as f:
    json.dump({"command": command, "runs": runs, "comparisons": comparisons,
               "plateaus": plateaus}, f, indent=2)
  md += ["![learning curves](" + os.path.basename(out) + ".png)", ""]
  with open(out + ".md", "w") as f:
    f.write("\n".join(md))

  panels = [("curve/accuracy", "accuracy"), ("curve/fully_valid", "fully valid")] + [
      (f"curve/steps{d}/accuracy", f"accuracy, {d}-step problems") for d in ds]
  fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2), squeeze=False)
  for ax, (key, title) in zip(axes[0], panels):
    for r in runs:
      pts = [(total_step(r, m), m[key]) for m in r["curve"] if key in m]
      if pts:
        ax.plot(*zip(*pts), marker="o", ms=3, label=r["name"])
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("SFT step")
    ax.set_ylim(0, 1)
  axes[0][0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(out + ".png", dpi=110)
  plt.close(fig)
