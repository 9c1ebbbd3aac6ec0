"""Write results/<name>.{md,json,png} from finished verifier workdirs (never edited by hand).

  python experiments/report_verifier.py --out=results/verifier_arith \
      --paired_against=workdirs/labels/exact workdirs/labels/exact workdirs/labels/mc_k4_hard ...

One table row per workdir and evaluation split: label source, agreement of the training
labels with the exact ones, step AUROC / error precision / recall / first-error accuracy /
ECE against exact labels, and solution-level AUROC. The plot is the reliability diagram
of every verifier on the in-distribution split. With --paired_against, every other PRM's
step AUROC minus that one's on the same held-out steps, with a 95% interval from
resampling solutions (s2jax.verifier_metrics.auroc_difference) and the verdict it allows.
"""
from __future__ import annotations

import argparse
import json
import os


from s2jax import report, stats, verifier_metrics as vm
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


def held_out_steps(workdir: str, split: str) -> dict:
  path = os.path.join(workdir, "eval", f"steps_{split}.json")
  if not os.path.exists(path):
    raise SystemExit(f"error: {path} is missing: {workdir} was evaluated before per-step "
                     "scores were kept; re-run its evaluation")
  with open(path) as f:
    return json.load(f)


def paired_rows(runs: list, baseline: str) -> tuple[dict, list]:
  """{workdir: {split: auroc_difference}} and the table rows, for every PRM but the
  baseline, on every split both were evaluated on."""
  base = next((r for r in runs if r["workdir"] == baseline), None)
  if base is None:
    raise SystemExit(f"error: --paired_against={baseline} is not one of the workdirs")
  out, rows, base_steps = {}, [], {}
  for r in runs:
    if r is base or r["config"]["kind"] != "prm":
      continue
    for split in [s for s in base["summary"] if s != "data" and s in r["summary"]]:
      if split not in base_steps:  # the baseline's steps, read once for every PRM
        base_steps[split] = held_out_steps(baseline, split)
      a, b = base_steps[split], held_out_steps(r["workdir"], split)
      if a["labels"] != b["labels"]:
        raise SystemExit(f"error: {r['workdir']} and {baseline} were not evaluated on the "
                         f"same held-out solutions of {split}")
      if base["summary"][split].get("auroc") is None:
        continue  # too few steps of a class for an AUROC (describe_auroc says why)
      d = vm.auroc_difference(a["scores"], b["scores"], a["labels"])
      out.setdefault(r["workdir"], {})[split] = d
      rows.append([r["name"], split, str(d["n_solutions"]), *report.comparison_cells(d),
                   stats.verdict(d["ci"])])
  return out, rows


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--out", required=True)
  ap.add_argument("--paired_against", default="",
                  help="A PRM workdir (one of the others): pair every other PRM with it.")
  ap.add_argument("workdirs", nargs="+")
  args = ap.parse_args()
  runs, rows, curves = [], [], {}
  for w in args.workdirs:
    config = json.load(open(os.path.join(w, "config.json")))
    info = json.load(open(os.path.join(w, "run_info.json")))
    launches = report.read_launches(w)
    summary = json.load(open(os.path.join(w, "eval", "summary.json")))
    name = describe(config)
    runs.append({"workdir": w, "name": name, "run_info": info, "summary": summary,
                 "config": config, "launches": launches})
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
        f"![reliability]({os.path.basename(args.out)}.png)", ""]
  if args.paired_against:
    paired, table = paired_rows(runs, args.paired_against)
    md += ["## Paired against " + next(r["name"] for r in runs
                                          if r["workdir"] == args.paired_against), "",
           "Step AUROC of each PRM minus the baseline's on the same held-out steps, with a "
           "95% interval from resampling whole solutions; the verdict comes from the "
           "interval.", "",
           markdown_table(["verifier", "split", "n solutions", "AUROC baseline → this",
                           "difference [95% interval]", "verdict"], table), ""]
    for r in runs:
      r["paired"] = paired.get(r["workdir"], {})
  md += ["## Runs", "", "Every launch of each verifier job, failed ones included:", ""]
  for r in runs:
    md.append(f"- {r['name']} (`{r['workdir']}`): data {json.dumps(r['summary']['data'])}")
  md += ["", report.launches_table([dict(x, where=r["name"]) for r in runs
                                    for x in r["launches"]], where=True)]
  with open(args.out + ".md", "w") as f:
    f.write("\n".join(md) + "\n")
  with open(args.out + ".json", "w") as f:
    json.dump(runs, f, indent=2)
  print("\n".join(md))


if __name__ == "__main__":
  main()
