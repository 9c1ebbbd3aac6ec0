"""A policy's headroom on one split: what it gets greedily, and what is in its samples.

Greedy accuracy and fully valid chains (every step passes the strict checker and the
answer is right), each with a 95% Wilson interval; then k samples per problem and pass@k
for k = 1 ... samples (Chen et al. 2021's unbiased estimator from all samples), with a
bootstrap interval over problems, and majority vote. pass@N is what a perfect verifier
would reach by choosing among N samples, and what outcome-reward RL can move pass@1
toward: the room search, filtering and RL have above the greedy policy.

  python experiments/headroom.py --config=configs/headroom.py \
      --config.policy_workdir=workdirs/base_policy --workdir=workdirs/headroom \
      --out=results/base_policy_headroom
"""
from __future__ import annotations

import json
import os
import time

import numpy as np
from scipy import special, stats as sps

from s2jax import evaluation, report, search, sharding
from s2jax.config import require
from s2jax.data import gsm8k
from s2jax.metrics import wilson_interval
from s2jax.policy import Policy
from s2jax.sampling import SamplingConfig


def pass_at_k(n: int, c: int, k: int) -> float:
  """The probability that at least one of k samples drawn without replacement from n, of
  which c are correct, is correct: 1 - C(n-c, k) / C(n, k)."""
  if not 0 <= c <= n or not 1 <= k <= n:
    raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n; got n={n} c={c} k={k}")
  return 1.0 - float(special.comb(n - c, k, exact=True)) / float(special.comb(n, k, exact=True))


def mean_interval(values, level: float = 0.95, seed: int = 0) -> list:
  """A percentile bootstrap interval of the mean over problems."""
  x = np.asarray(values, float)
  if np.all(x == x[0]):
    return [float(x[0]), float(x[0])]
  ci = sps.bootstrap((x,), np.mean, confidence_level=level, method="percentile",
                     n_resamples=10000, random_state=np.random.default_rng(seed))
  return [float(ci.confidence_interval.low), float(ci.confidence_interval.high)]


def validate(config) -> None:
  require(bool(config.policy_workdir), "policy_workdir", config.policy_workdir,
          "must name an SFT (or derived) policy workdir")
  require(config.problems > 0, "problems", config.problems, "must be positive")
  require(config.samples > 0, "samples", config.samples, "must be positive")
  require(all(1 <= k <= config.samples for k in config.ks), "ks", tuple(config.ks),
          f"must lie in 1 ... samples={config.samples}")


def run(config, workdir: str) -> dict:
  validate(config)
  start, info = time.time(), report.run_info()
  os.makedirs(workdir, exist_ok=True)
  policy = Policy(config.policy_workdir)
  records = gsm8k.read_jsonl(policy.split_path(config.split))[: config.problems]
  if len(records) < config.problems:
    raise ValueError(f"split {config.split!r} of {config.policy_workdir} has {len(records)} "
                     f"problems; problems={config.problems} asked for more")
  s = config.sampling
  max_new = s.max_new_tokens or policy.config.eval.max_new_tokens
  cache = s.max_cache_len or policy.config.eval.max_cache_len
  m = policy.load()
  bsh = sharding.batch_sharding(m.mesh, 2, s.batch_size)
  greedy, _ = evaluation.evaluate_records(
      policy.sampler(cache), m.params, m.tokenizer, records, task=policy.task,
      batch_size=s.batch_size, max_new_tokens=max_new, desc="greedy", batch_sharding=bsh)
  drawn = policy.samples(config.split, config.problems, config.samples, seed=config.seed,
                         sampling=SamplingConfig(s.temperature, s.top_k, s.top_p),
                         batch_size=s.batch_size, max_new_tokens=max_new, max_cache_len=cache)
  judged = [[evaluation.judge(policy.task, r, t) for t in r["samples"]] for r in drawn]
  per_problem = {
      "greedy_correct": [int(g["correct"]) for g in greedy],
      "greedy_fully_valid": [int(g["fully_valid"]) for g in greedy],
      "num_steps": [g["num_steps"] for g in greedy],
      "samples_correct": [sum(j["correct"] for j in js) for js in judged],
      "samples_fully_valid": [sum(j["fully_valid"] for j in js) for js in judged],
      "majority_correct": [int(search.majority_vote([j["answer"] for j in js])
                               == policy.task.from_json(r).answer)
                           for r, js in zip(drawn, judged)],
  }
  if config.get("save_outputs", True):
    gsm8k.write_jsonl(os.path.join(workdir, "samples.jsonl"),
                      [{"question": r["question"], "greedy": g["output"],
                        "samples": r["samples"], "correct": [j["correct"] for j in js],
                        "fully_valid": [j["fully_valid"] for j in js]}
                       for r, g, js in zip(drawn, greedy, judged)])
  result = {"run_info": info, "config": config.to_dict(),
            "policy_step": policy.step, "max_new_tokens": max_new,
            "summary": summarize(per_problem, config.samples, config.ks),
            "per_problem": per_problem, "seconds": time.time() - start}
  with open(os.path.join(workdir, "headroom.json"), "w") as f:
    json.dump(result, f, indent=2)
  return result


def summarize(per_problem: dict, samples: int, ks) -> dict:
  """Greedy rates with Wilson intervals; pass@k (answer right, and fully valid chain) and
  majority vote with bootstrap intervals over problems."""
  n = len(per_problem["greedy_correct"])
  out = {"n": n}
  for key in ("greedy_correct", "greedy_fully_valid"):
    hits = int(sum(per_problem[key]))
    out[key] = {"rate": hits / n, "ci": list(wilson_interval(hits, n))}
  for key in ("samples_correct", "samples_fully_valid"):
    out[key.replace("samples_", "pass_at_k_")] = []
    for k in ks:
      vals = [pass_at_k(samples, c, k) for c in per_problem[key]]
      out[key.replace("samples_", "pass_at_k_")].append(
          {"k": k, "rate": float(np.mean(vals)), "ci": mean_interval(vals)})
  maj = per_problem["majority_correct"]
  out["majority_vote"] = {"n": samples, "rate": float(np.mean(maj)), "ci": mean_interval(maj)}
  return out


def write_report(result: dict, out: str) -> None:
  """<out>.{md,json,png}: the table and the pass@k curve."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  with open(out + ".json", "w") as f:
    json.dump(result, f, indent=2)
  s, c, info = result["summary"], result["config"], result["run_info"]
  fmt = lambda d: f"{d['rate']:.3f} [{d['ci'][0]:.3f}, {d['ci'][1]:.3f}]"  # noqa: E731
  md = ["# Headroom: greedy accuracy against pass@k on the same problems", "",
        "Machine-written by `experiments/headroom.py` (s2jax.headroom).", "",
        f"- command: `{info['command']}`", f"- git commit: `{info['commit']}`",
        f"- started: {info['started']}; wall time {result.get('seconds', float('nan')):.0f} s",
        f"- policy: `{c['policy_workdir']}` (step {result['policy_step']}), split "
        f"`{c['split']}`, the first {s['n']} problems; {c['samples']} samples per problem at "
        f"temperature {c['sampling']['temperature']}, at most {result['max_new_tokens']} new "
        "tokens", "",
        "Greedy rates carry 95% Wilson intervals; pass@k (Chen et al. 2021's unbiased "
        f"estimator from all {c['samples']} samples) and majority vote carry 95% bootstrap "
        "intervals over problems. A fully valid chain has every step right by the strict "
        "checker and the right answer.", "",
        report.markdown_table(["measure", f"rate [95% CI], n = {s['n']}"], [
            ["greedy accuracy", fmt(s["greedy_correct"])],
            ["greedy fully valid chains", fmt(s["greedy_fully_valid"])],
            [f"majority vote of {c['samples']}", fmt(s["majority_vote"])]]
            + [[f"pass@{d['k']}", fmt(d)] for d in s["pass_at_k_correct"]]
            + [[f"pass@{d['k']}, fully valid", fmt(d)] for d in s["pass_at_k_fully_valid"]]),
        ""]
  fig, ax = plt.subplots(figsize=(4.5, 3.4))
  for key, label in (("pass_at_k_correct", "pass@k"),
                     ("pass_at_k_fully_valid", "pass@k, fully valid")):
    ks = [d["k"] for d in s[key]]
    ax.plot(ks, [d["rate"] for d in s[key]], marker="o", label=label)
    ax.fill_between(ks, [d["ci"][0] for d in s[key]], [d["ci"][1] for d in s[key]], alpha=0.2)
  ax.axhline(s["greedy_correct"]["rate"], color="k", ls="--", label="greedy")
  ax.axhline(s["majority_vote"]["rate"], color="gray", ls=":", label="majority vote")
  ax.set_xscale("log", base=2)
  ax.set_xlabel("k samples")
  ax.set_ylabel("accuracy")
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(out + ".png", dpi=120)
  plt.close(fig)
  md += [f"![pass@k]({os.path.basename(out)}.png)", ""]
  with open(out + ".md", "w") as f:
    f.write("\n".join(md))
