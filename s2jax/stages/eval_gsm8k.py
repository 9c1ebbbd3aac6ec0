"""GSM8K test accuracy of a pretrained checkpoint or an s2jax policy workdir.

  python experiments/eval_gsm8k.py --config=configs/gsm8k_smollm2.py --workdir=runs/eval
  python experiments/eval_gsm8k.py --config=configs/gsm8k_smollm2.py:fewshot \
      --workdir=runs/eval_fewshot --config.eval.limit=100
  python experiments/eval_gsm8k.py --config=... --policy_workdir=runs/gsm8k_sft --workdir=...

Greedy, batched, jitted sampling over the test split (`--config.data.num_eval`, or
`--limit`, for a quick run); per-problem outputs are appended to <workdir>/outputs.jsonl
chunk by chunk, so an interrupted run resumes where it stopped. summary.json holds the
accuracy with its 95% Wilson interval, the prompt, the model and the command.
"""
from __future__ import annotations

import json
import os
import time


import jax

from s2jax import evaluation, pretrained, report, sharding, tasks
from s2jax.data import jsonl
from s2jax.metrics import wilson_interval


def run(config, workdir: str, policy_workdir: str = "", limit: int = 0) -> dict:
  os.makedirs(workdir, exist_ok=True)
  first_run = report.write_run_info(workdir)
  records = pretrained.gsm8k_records(config, "test")
  if limit:
    records = records[:limit]
  model, params, tok, mesh, source = pretrained.load_for_eval(config, policy_workdir)
  sampler = pretrained.sampler_for(model, tok, config)
  out_path = os.path.join(workdir, "outputs.jsonl")
  done = []
  if os.path.exists(out_path):
    done = jsonl.read_jsonl(out_path, lambda r, where: r, what="outputs")
    if any(d["question"] != r["question"] for d, r in zip(done, records)):
      raise ValueError(f"{out_path} holds outputs of other problems; use a fresh workdir")
  e = config.eval
  task = tasks.get("gsm8k")
  bsh = sharding.batch_sharding(mesh, 2, e.batch_size)
  t0 = time.time()
  for start in range(len(done), len(records), e.chunk):
    chunk = records[start:start + e.chunk]
    results, _ = evaluation.evaluate_records(
        sampler, params, tok, chunk, task=task, batch_size=e.batch_size,
        max_new_tokens=e.max_new_tokens,
        desc=f"gsm8k {start + len(chunk)}/{len(records)}", batch_sharding=bsh)
    done += results
    if jax.process_index() == 0:
      jsonl.write_jsonl(out_path, done)
  n, k = len(done), sum(r["correct"] for r in done)
  lo, hi = wilson_interval(k, n)
  summary = {"model": source, "prompt": config.prompt.to_dict(), "n": n, "correct": k,
             "calculator": bool(e.get("calculator", False)),
             "accuracy": k / n, "wilson95": [lo, hi],
             "answered": sum(r["answer"] is not None for r in done) / n,
             "max_new_tokens": e.max_new_tokens, "seconds_this_run": time.time() - t0,
             "run_info": first_run,
             "last_run": report.run_info()}
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "summary.json"), "w") as f:
      json.dump(summary, f, indent=2)
  return summary
