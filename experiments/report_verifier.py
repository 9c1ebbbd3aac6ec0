"""Write results/<name>.{md,json,png} from finished verifier workdirs (never edited by hand).

  python experiments/report_verifier.py --out=results/verifier_arith \
      workdirs/prm workdirs/orm workdirs/prm_mc_k4 ...

One table row per workdir and evaluation split: label source, agreement of the training
labels with the exact ones, step AUROC / error precision / recall / first-error accuracy /
ECE against exact labels, and solution-level AUROC. The plot is the reliability diagram
of every verifier on the in-distribution split.
"""
from __future__ import annotations

import argparse
import json
import os


from s2jax import verifier_metrics as vm
from s2jax.report import markdown_table


def describe(config: dict) -> str:
  if config["kind"] == "orm":
    return "ORM (final-answer labels)"
  lc = config["labels"]
  src = lc["source"]
  if src == "mc":
    src = f"mc K={lc['mc_k']} {lc['mc_mode']}"
  extra = f", {lc['max_solutions']} solutions" if lc["max_solutions"] else ""
  corr = f" + corrupted x{lc['corrupted_per_problem']}" if lc["corrupted_per_problem"] else ""
  return f"PRM {src}{corr}{extra}"


def fmt(x, digits=3):
  return "" if x is None else (f"{x:.{digits}f}" if isinstance(x, float) else str(x))


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--out", required=True)
  ap.add_argument("workdirs", nargs="+")
  args = ap.parse_args()
  runs, rows, curves = [], [], {}
  for w in args.workdirs:
    config = json.load(open(os.path.join(w, "config.json")))
    info = json.load(open(os.path.join(w, "run_info.json")))
    summary = json.load(open(os.path.join(w, "eval", "summary.json")))
    name = describe(config)
    runs.append({"workdir": w, "name": name, "run_info": info, "summary": summary,
                 "config": config})
    data = summary["data"]
    agree = data.get("label_agreement", {}).get("agreement")
    trained = (f"{data['valid_steps']} / {data['invalid_steps']}" if "valid_steps" in data
               else "")
    for split, r in summary.items():
      if split == "data":
        continue
      rows.append([name, trained, split, fmt(agree), vm.describe_auroc(r),
                   fmt(r.get("error_precision")),
                   fmt(r.get("error_recall")), fmt(r.get("first_error_accuracy")),
                   fmt(r["reliability"]["ece"]), fmt(r["solution_auroc"]), r["solutions"]])
    first = next(s for s in summary if s != "data")
    curves[name] = summary[first]["reliability"]
  vm.plot_reliability(curves, args.out + ".png",
                      title="Verifier calibration, held-out samples (in-distribution)")
  md = ["# Verifiers against exact step labels", "",
        "Machine-written by `experiments/report_verifier.py` from the verifier workdirs.",
        "Held-out problems, policy samples no verifier saw in training; step metrics are "
        "against the synthetic task's exact step labels (threshold 0.5, an error is a "
        "step scored below it). Label agreement: the training labels of that source "
        "against exact labels on the same training steps.", "",
        markdown_table(["verifier", "training steps valid / invalid", "split",
                        "label agreement", "step AUROC",
                        "error precision", "error recall", "first-error acc.", "ECE",
                        "solution AUROC", "solutions"], rows), "",
        f"![reliability]({os.path.basename(args.out)}.png)", "", "## Runs", ""]
  for r in runs:
    md.append(f"- {r['name']}: `{r['run_info']['command']}` (commit "
              f"`{r['run_info']['commit']}`), data {json.dumps(r['summary']['data'])}")
  with open(args.out + ".md", "w") as f:
    f.write("\n".join(md) + "\n")
  with open(args.out + ".json", "w") as f:
    json.dump(runs, f, indent=2)
  print("\n".join(md))


if __name__ == "__main__":
  main()
