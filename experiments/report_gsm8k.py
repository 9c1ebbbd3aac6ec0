"""results/gsm8k_smollm2.{md,json}: GSM8K accuracy of SmolLM2-135M-Instruct (from the
eval_gsm8k workdirs), next to the published figure, and the generation benchmark.

  python experiments/report_gsm8k.py --evals=runs/gsm8k/zeroshot_chat,runs/gsm8k/fewshot5 \
      --bench=results/bench_generate.json --out=results/gsm8k_smollm2
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import sys


from s2jax import report, stats
from s2jax.tasks.arith import check_annotation

ANNOTATION = re.compile(r"<<[^=<>]*=[^<>]*>>")

# The model card's own table (lighteval, 5-shot), the figure to compare with.
PUBLISHED = {"accuracy": 0.014, "setting": "GSM8K (5-shot), lighteval",
             "source": "https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct "
                       "(model card, 'Instruction model' table)"}


def describe(prompt: dict) -> str:
  if prompt["kind"] == "fewshot":
    return f"{prompt['num_shots']}-shot (first train problems)"
  return "zero-shot, chat template" if prompt["kind"] == "chat" else prompt["kind"]


def load_eval(wd: str, outputs_dir: str) -> tuple[str, dict, list]:
  """(name, summary, per-problem outputs) of an eval_gsm8k workdir, copied into
  `outputs_dir` (<name>.summary.json, <name>.jsonl.gz) so the report regenerates from
  results/ alone; a workdir that is gone is read back from those copies."""
  name = os.path.basename(wd.rstrip("/"))
  kept_summary = os.path.join(outputs_dir, f"{name}.summary.json")
  kept_outputs = os.path.join(outputs_dir, f"{name}.jsonl.gz")
  if os.path.exists(os.path.join(wd, "summary.json")):
    with open(os.path.join(wd, "summary.json")) as f:
      summary = json.load(f)
    with open(os.path.join(wd, "outputs.jsonl")) as f:
      outputs = [json.loads(line) for line in f if line.strip()]
    os.makedirs(outputs_dir, exist_ok=True)
    with open(kept_summary, "w") as f:
      json.dump(summary, f, indent=2)
    with gzip.open(kept_outputs, "wt") as f:
      f.writelines(json.dumps(r) + "\n" for r in outputs)
  elif os.path.exists(kept_summary):
    with open(kept_summary) as f:
      summary = json.load(f)
    with gzip.open(kept_outputs, "rt") as f:
      outputs = [json.loads(line) for line in f if line.strip()]
  else:
    sys.exit(f"error: {wd} has no summary.json and {kept_summary} does not exist")
  if len(outputs) != summary["n"]:
    sys.exit(f"error: {name}: {len(outputs)} outputs but summary.json says n={summary['n']}")
  return name, summary, outputs


def annotation_stats(outputs: list) -> tuple[int, int]:
  """(calculator annotations `<<expr=value>>` in the outputs, how many of them have the
  right value): what the calculator tool changes, beside the accuracy."""
  total = right = 0
  for r in outputs:
    for m in ANNOTATION.finditer(r.get("output") or ""):
      total += 1
      right += check_annotation(m.group(0))[0]
  return total, right


def describe_run(s: dict) -> str:
  return describe(s["prompt"]) + (", calculator" if s.get("calculator") else "")


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--evals", required=True, help="comma-separated eval_gsm8k workdirs")
  ap.add_argument("--outputs_dir", default="results/gsm8k_smollm2_outputs",
                  help="where each eval's summary and outputs are kept (and read back from "
                       "when its workdir is gone)")
  ap.add_argument("--pairs", default="", help="comma-separated a:b eval names compared "
                                               "problem by problem (b minus a)")
  ap.add_argument("--bench", default="")
  ap.add_argument("--out", required=True)
  args = ap.parse_args()
  rows, data, outputs = [], {"published": PUBLISHED, "evals": {}, "pairs": {}}, {}
  for wd in args.evals.split(","):
    name, s, outputs[name] = load_eval(wd, args.outputs_dir)
    data["evals"][name] = s
    lo, hi = s["wilson95"]
    annots, right = annotation_stats(outputs[name])
    data["evals"][name]["annotations"] = {"total": annots, "arithmetic_right": right}
    rows.append([describe_run(s), f"{s['correct']}/{s['n']}", f"{100 * s['accuracy']:.2f}%",
                 f"[{100 * lo:.2f}%, {100 * hi:.2f}%]", f"{100 * s['answered']:.0f}%",
                 f"{right}/{annots}" if annots else "0",
                 s["max_new_tokens"], f"`{s['run_info']['command']}` @ {s['run_info']['commit'][:12]}"])
  md = ["# SmolLM2-135M-Instruct on GSM8K (s2jax)", "",
        "Greedy decoding with s2jax's sampler on the GGUF checkpoint (dequantized to fp32), "
        "answers graded by `gsm8k.extract_answer`. Machine-written by "
        f"`python {' '.join(sys.argv)}`.", "",
        report.markdown_table(["prompt", "correct", "accuracy", "95% Wilson", "answered",
                               "annotations with the right value", "max new tokens",
                               "command"], rows), "",
        f"Published: {100 * PUBLISHED['accuracy']:.1f}% ({PUBLISHED['setting']}; "
        f"{PUBLISHED['source']}).", ""]
  prow = []
  for pair in filter(None, args.pairs.split(",")):
    a, b = pair.split(":")
    qa = [r["question"] for r in outputs[a]]
    if qa != [r["question"] for r in outputs[b]]:
      sys.exit(f"error: {a} and {b} are not on the same problems in the same order")
    ca, cb = [r["correct"] for r in outputs[a]], [r["correct"] for r in outputs[b]]
    d = stats.compare(ca, cb, better="higher", worse="lower")
    m = stats.mcnemar_exact(ca, cb)
    data["pairs"][pair] = {**d, **m}
    if d["verdict"].startswith("no effect"):  # in points, like the columns
      data["pairs"][pair]["verdict"] = f"no effect detected at ±{100 * d['mde']:.2f} pts"
    prow.append([f"{describe_run(data['evals'][b])} − {describe_run(data['evals'][a])}",
                 str(d["n"]), f"{100 * d['difference']:+.2f} pts",
                 f"[{100 * d['ci'][0]:+.2f}, {100 * d['ci'][1]:+.2f}]",
                 f"{m['only_a']} / {m['only_b']}", f"{m['p_value']:.3g}",
                 data["pairs"][pair]["verdict"]])
  if prow:
    md += ["## Paired comparisons (same problems)", "",
           "Difference in accuracy with a 95% paired bootstrap interval; the exact McNemar "
           "test on the problems only one run solves; the verdict comes from the interval, "
           "and a null result gives the smallest difference this n could detect "
           "(s2jax.stats).", "",
           report.markdown_table(["comparison", "n", "difference", "95% interval",
                                  "solved only by first / second", "McNemar p", "verdict"],
                                 prow), ""]
  if args.bench:
    with open(args.bench) as f:
      b = json.load(f)
    data["bench_generate"] = b
    r = b["result"]
    md += ["## Generation speed against transformers", "",
           f"`{b['run_info']['command']}` @ {b['run_info']['commit'][:12]}, {r['device']}, "
           f"{r['new_tokens']} new tokens, greedy, GSM8K questions in the chat template.", "",
           f"Machine limits measured in the same run: memory bandwidth "
           f"{r['memory_bandwidth_gb_s']:.1f} GB/s (batch-1 fp32 limit "
           f"{r['batch1_bandwidth_limit_tok_s']:.1f} tokens/s), matmul "
           f"{r['matmul_gflop_s']:.0f} GFLOP/s (compute limit {r['compute_limit_tok_s']:.0f} "
           f"tokens/s).", ""]
    hdr = ["batch", "transformers tok/s", "s2jax fp32 tok/s", "ratio", "identical rows"]
    has_bf16 = any("s2jax_bf16" in v for v in r["batches"].values())
    if has_bf16:
      hdr += ["s2jax bf16 tok/s", "ratio bf16"]
    brows = []
    for k, v in r["batches"].items():
      row = [k, f"{v['transformers']:.1f}", f"{v['s2jax_fp32']:.1f}", f"{v['ratio_fp32']:.2f}",
             f"{v['identical_rows']}/{k}"]
      if has_bf16:
        row += [f"{v.get('s2jax_bf16', float('nan')):.1f}", f"{v.get('ratio_bf16', float('nan')):.2f}"]
      brows.append(row)
    md += [report.markdown_table(hdr, brows), ""]
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out + ".md", "w") as f:
    f.write("\n".join(md))
  with open(args.out + ".json", "w") as f:
    json.dump(data, f, indent=2)
  print("\n".join(md))


if __name__ == "__main__":
  main()
