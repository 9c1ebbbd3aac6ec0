"""Write results/<name>.{md,json,png} from a finished SFT workdir (never edited by hand).

  python experiments/report_sft.py --workdir=workdirs/sft --out=results/sft_arith
"""
from __future__ import annotations

import argparse
import json
import os


from s2jax.metrics import read_metrics
from s2jax.report import markdown_table


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--workdir", required=True)
  ap.add_argument("--out", required=True, help="path prefix for .md, .json and .png")
  args = ap.parse_args()
  w = args.workdir
  info = json.load(open(os.path.join(w, "run_info.json")))
  config = json.load(open(os.path.join(w, "config.json")))
  summary = json.load(open(os.path.join(w, "eval", "summary.json")))
  metrics = read_metrics(os.path.join(w, "metrics.jsonl"))
  train = [m for m in metrics if "loss" in m]
  starts = [m for m in metrics if m.get("event") == "start"]
  evals = [m for m in metrics if any(k.startswith("eval/") for k in m)]
  # A resumed run has one "start" per launch; time counts only within launches.
  def launch_time(until):
    total = 0.0
    for i, st in enumerate(starts):
      end = starts[i + 1]["time"] if i + 1 < len(starts) else float("inf")
      inside = [m["time"] for m in metrics if st["time"] <= m["time"] < end and m in until]
      total += max(inside) - st["time"] if inside else 0.0
    return total or None
  train_s = launch_time(train) if starts else None
  total_s = launch_time(train + evals) if starts and evals else None

  def majority_baseline(split):
    """Accuracy of always answering the split's most frequent answer: the chance level."""
    path = os.path.join(w, "data", f"{split}.jsonl")
    if not os.path.exists(path):
      return float("nan")
    answers = [json.loads(l)["answer"].rsplit("####", 1)[-1].strip() for l in open(path)]
    return max(answers.count(a) for a in set(answers)) / len(answers)

  rows = [[name, s["n"], f"{s['accuracy']:.3f}", f"{s['fully_valid']:.3f}",
           f"{majority_baseline(name):.3f}"] for name, s in summary.items()]
  steps_all = sorted({int(k) for s in summary.values() for k in s["by_num_steps"]})
  by_steps = [[name] + [f"{s['by_num_steps'][str(k)]['accuracy']:.2f} ({s['by_num_steps'][str(k)]['n']})"
                        if str(k) in s["by_num_steps"] else "" for k in steps_all]
              for name, s in summary.items()]
  md = [f"# CoT SFT on the synthetic arithmetic task",
        "", "Machine-written by `experiments/report_sft.py` from the run's workdir.", "",
        f"- command: `{info['command']}`", f"- git commit: `{info['commit']}`",
        *([f"- resumed: `{info['resumed']}`"] if "resumed" in info else []),
        f"- launches: {len(starts)} (training steps {', '.join(str(m['step']) for m in starts)} onwards)",
        f"- started: {info['started']}",
        f"- devices: {starts[0]['devices'] if starts else '?'} "
        f"(processes: {starts[0]['processes'] if starts else '?'})",
        f"- wall time: training {train_s / 60:.1f} min, training + evaluation "
        f"{total_s / 60:.1f} min" if train_s and total_s else "- wall time: unknown",
        f"- final training loss: {train[-1]['loss']:.4f} (step {train[-1]['step']})",
        "", "## Greedy accuracy and fully valid step chains", "",
        markdown_table(["split", "n", "accuracy", "fully valid chains",
                        "majority-answer baseline"], rows), "",
        "A fully valid chain has every step valid by the exact checker and the right answer.",
        "The majority-answer baseline always answers the split's most frequent answer.", "",
        "## Accuracy by number of reasoning steps (n in parentheses)", "",
        markdown_table(["split"] + [f"{k} steps" for k in steps_all], by_steps), "",
        f"![accuracy by steps]({os.path.basename(args.out)}.png)", "",
        "## Config", "", "```json", json.dumps(config, indent=1), "```", ""]
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out + ".md", "w") as f:
    f.write("\n".join(md))
  with open(args.out + ".json", "w") as f:
    json.dump({"run_info": info, "summary": summary, "train_minutes": train_s and train_s / 60,
               "total_minutes": total_s and total_s / 60, "final_loss": train[-1]["loss"]},
              f, indent=2)

  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
  for name, s in summary.items():
    ks = sorted(int(k) for k in s["by_num_steps"])
    ax1.plot(ks, [s["by_num_steps"][str(k)]["accuracy"] for k in ks], "o-", label=name)
  ax1.set_xlabel("reasoning steps")
  ax1.set_ylabel("greedy accuracy")
  ax1.set_ylim(0, 1)
  ax1.legend()
  ax1.set_title("accuracy by problem depth")
  ax2.plot([m["step"] for m in train], [m["loss"] for m in train])
  ax2.set_yscale("log")
  ax2.set_xlabel("step")
  ax2.set_ylabel("training loss (solution tokens)")
  ax2.set_title("SFT loss")
  fig.tight_layout()
  fig.savefig(args.out + ".png", dpi=110)
  print(f"wrote {args.out}.md/.json/.png")


if __name__ == "__main__":
  main()
