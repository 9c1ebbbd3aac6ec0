"""Write results/<name>.{md,json,png} from self-distillation and RL workdirs.

  python experiments/report_rl.py --distill=workdirs/distill/prm_topk,workdirs/distill/correct,... \
      --rl=workdirs/ppo/ppo_step,workdirs/ppo/ppo_outcome,workdirs/ppo/grpo --out=results/rl_arith

Reads only what the runs saved (rounds.json; metrics.jsonl, eval.jsonl, config.json and
run_info.json), so the report regenerates without computing anything. Runs that have not
finished are reported with the iterations they have.
"""
from __future__ import annotations

import json
import os


import numpy as np

from s2jax import report
from s2jax.metrics import read_metrics


def load_distill(workdir: str) -> dict:
  with open(os.path.join(workdir, "rounds.json")) as f:
    log = json.load(f)
  return {"name": os.path.basename(os.path.normpath(workdir)), "workdir": workdir,
          "run_info": log["run_info"], "config": log["config"], "rounds": log["rounds"]}


def load_rl(workdir: str) -> dict:
  with open(os.path.join(workdir, "config.json")) as f:
    cfg = json.load(f)["rl"]
  with open(os.path.join(workdir, "run_info.json")) as f:
    info = json.load(f)
  evals_path = os.path.join(workdir, "eval.jsonl")
  return {"name": os.path.basename(os.path.normpath(workdir)), "workdir": workdir,
          "run_info": info, "config": cfg, "metrics": read_metrics(os.path.join(workdir, "metrics.jsonl")),
          "evals": read_metrics(evals_path) if os.path.exists(evals_path) else [],
          "finished": os.path.exists(os.path.join(workdir, "DONE"))}


def describe_rl(cfg: dict) -> str:
  r = cfg["rewards"]
  parts = []
  if r["step_weight"]:
    parts.append(f"PRM step ({r['step_transform']}) x{r['step_weight']:g}")
  if r["outcome"] != "none" and r["outcome_weight"]:
    parts.append(f"{r['outcome']} outcome x{r['outcome_weight']:g}")
  alg = cfg["rl"]["algorithm"].upper()
  group = f", group {cfg['rl']['group_size']}" if cfg["rl"]["group_size"] > 1 else ""
  return (f"{alg}{group}: " + " + ".join(parts)
          + f"; KL {cfg['rl']['kl_estimator']} x{cfg['kl']['coef']:g}")


def smooth(xs, k: int = 5):
  xs = np.asarray([np.nan if x is None else x for x in xs], float)
  out = np.full_like(xs, np.nan)
  for i in range(len(xs)):
    w = xs[max(0, i - k + 1):i + 1]
    w = w[~np.isnan(w)]
    out[i] = w.mean() if len(w) else np.nan
  return out


def write_report(distills: list, rls: list, out: str, command: str) -> dict:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  splits_ = None
  stages = []  # (stage name, {split: accuracy}, note)
  base = None
  for d in distills:
    r0 = d["rounds"][0]["eval"]
    splits_ = splits_ or list(r0)
    if base is None:
      base = r0
      stages.append(("SFT", {k: v["accuracy"] for k, v in r0.items()}, "the starting policy"))
    for r in d["rounds"][1:]:
      sel = r["selection"]
      stages.append((f"distill {d['name']} round {r['round']}",
                     {k: v["accuracy"] for k, v in r["eval"].items()},
                     f"kept {sel['kept']} samples"))
  for r in rls:
    if not r["evals"]:
      continue
    first, last = r["evals"][0], r["evals"][-1]
    splits_ = splits_ or list(first["accuracy"])
    if base is None:
      base = {k: {"accuracy": v} for k, v in first["accuracy"].items()}
      stages.append(("SFT", dict(first["accuracy"]), "the starting policy"))
    stages.append((f"RL {r['name']} (iteration {last['step']})", dict(last["accuracy"]),
                   describe_rl(r["config"])))

  md = ["# Self-distillation and RL from the SFT policy", "",
        "Machine-written by `experiments/report_rl.py` from the runs' saved logs.", "",
        f"- report command: `{command}`"]
  for d in distills:
    md.append(f"- distill `{d['name']}`: `{d['run_info']['command']}` at commit "
              f"`{d['run_info']['commit']}`")
  for r in rls:
    md.append(f"- RL `{r['name']}`: `{r['run_info']['command']}` at commit "
              f"`{r['run_info']['commit']}`" + ("" if r["finished"] else " (unfinished)"))
  md += ["", "## Greedy accuracy after each stage", "",
         "First problems of each split (the same problems for every stage); the exact checker "
         "grades the final answer.", ""]
  n_eval = (distills[0]["config"]["eval"]["num_problems"] if distills
            else rls[0]["config"]["eval"]["num_problems"])
  se = {s: np.sqrt(max(stages[0][1][s] * (1 - stages[0][1][s]), 1e-12) / n_eval)
        for s in splits_} if stages else {}
  rows = [[name] + [f"{acc.get(s, float('nan')):.3f}" for s in splits_] + [note]
          for name, acc, note in stages]
  rows.append(["(1 binomial s.e. at the SFT accuracy)"] + [f"±{se[s]:.3f}" for s in splits_]
              + [f"{n_eval} problems per split"])
  md.append(report.markdown_table(["stage"] + splits_ + ["notes"], rows))
  if distills:
    md += ["", "## Self-distillation rounds", "",
           "Per round: samples drawn from the previous round's policy on training problems, "
           "what the filter kept, and the exact checker's verdict on the kept samples.", ""]
    rows = []
    for d in distills:
      for r in d["rounds"][1:]:
        s = r["selection"]
        rows.append([d["name"], r["round"], f"{s['sample_accuracy']:.3f}", s["kept"],
                     f"{s['kept_correct_fraction']:.3f}", f"{s['unique_correct_per_problem']:.2f}",
                     f"{s['kept_step_validity']:.3f}"])
    md.append(report.markdown_table(
        ["filter", "round", "sample accuracy", "kept", "kept correct", "unique correct / problem",
         "kept step validity"], rows))
    c = distills[0]["config"]
    md += ["", f"Settings: {c['samples']['problems']} problems x {c['samples']['per_problem']} "
           f"samples at temperature {c['samples']['temperature']}; fine-tune "
           f"{c['train']['steps']} steps of {c['train']['batch_size']} at lr {c['optim']['lr']} "
           f"from `{c['finetune']['init']}`; filter settings {c['filter']}."]
  if rls:
    md += ["", "## RL runs", "",
           "Reward = the verifier part of the reward per rollout (what the policy is paid, KL "
           "excluded); accuracy = the exact checker on the same rollouts. Means over the first "
           "and last 5 iterations. Recovery rate = greedy completions from a corrupted "
           "reference prefix (held-out problems) that still reach the right answer.", ""]
    rows = []
    for r in rls:
      m = r["metrics"]
      if not m:
        continue
      rew = [x["verifier_reward"] for x in m]
      acc = [x["true_accuracy"] for x in m if x.get("true_accuracy") is not None]
      rec = [e.get("recovery_rate") for e in r["evals"]]
      rows.append([r["name"], describe_rl(r["config"]), len(m),
                   f"{np.mean(rew[:5]):.3f} → {np.mean(rew[-5:]):.3f}",
                   f"{np.mean(acc[:5]):.3f} → {np.mean(acc[-5:]):.3f}",
                   f"{np.mean([x['steps_per_response'] for x in m[:5]]):.2f} → "
                   f"{np.mean([x['steps_per_response'] for x in m[-5:]]):.2f}",
                   f"{m[-1]['kl']:.4f}",
                   f"{rec[0]:.3f} → {rec[-1]:.3f}" if rec and rec[0] is not None else "",
                   sum(bool(x.get("hacking_alarm")) for x in m)])
    md.append(report.markdown_table(
        ["run", "rewards", "iterations", "reward", "rollout accuracy", "steps / response",
         "final KL / token",
         "recovery rate", "hacking alarms"], rows))
    t = rls[0]["metrics"][-1] if rls[0]["metrics"] else None
    if t:
      md += ["", f"Time per iteration in `{rls[0]['name']}` (last): rollout "
             f"{t['time_rollout']:.1f}s, scoring {t['time_scoring']:.1f}s, update "
             f"{t['time_update']:.1f}s."]

  n_plots = 1 + len(rls)
  fig, axes = plt.subplots(1, n_plots, figsize=(4.6 * n_plots, 3.8), squeeze=False)
  ax = axes[0][0]
  x = np.arange(len(splits_ or []))
  width = 0.8 / max(len(stages), 1)
  for i, (name, acc, _) in enumerate(stages):
    ax.bar(x + i * width, [acc.get(s, 0) for s in splits_], width, label=name)
  ax.set_xticks(x + 0.4 - width / 2)
  ax.set_xticklabels(splits_ or [], rotation=20, fontsize=7)
  ax.set_ylabel("greedy accuracy")
  ax.set_title("accuracy after each stage")
  ax.legend(fontsize=5)
  for ax, r in zip(axes[0][1:], rls):
    m = r["metrics"]
    its = [x["step"] for x in m]
    ax.plot(its, smooth([x["verifier_reward"] for x in m]), label="verifier reward (5-it mean)")
    ax.plot(its, smooth([x.get("true_accuracy") for x in m]),
            label="exact accuracy of rollouts (5-it mean)")
    ax.plot([e["step"] for e in r["evals"]], [e["accuracy"]["test"] for e in r["evals"]], "k*",
            label="greedy test accuracy")
    alarms = [x["step"] for x in m if x.get("hacking_alarm")]
    if alarms:
      ax.plot(alarms, [0] * len(alarms), "rv", label="hacking alarm")
    ax.set_title(f"{r['name']}", fontsize=9)
    ax.set_xlabel("iteration")
    ax.legend(fontsize=6)
  fig.tight_layout()
  fig.savefig(out + ".png", dpi=120)
  plt.close(fig)
  md += ["", f"![accuracy by stage; reward and accuracy per RL iteration]"
         f"({os.path.basename(out)}.png)", ""]
  with open(out + ".md", "w") as f:
    f.write("\n".join(md))
  data = {"command": command, "stages": [{"stage": n, "accuracy": a, "note": t}
                                         for n, a, t in stages],
          "distill": distills, "rl": rls}
  with open(out + ".json", "w") as f:
    json.dump(data, f, indent=2, default=list)
  return data
