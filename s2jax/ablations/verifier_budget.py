"""Ablation 5: how to split a fixed compute between verifier training and samples.

  python experiments/ablation.py \
      --config=configs/ablations/verifier_budget.py --workdir=workdirs/ablations \
      --out=results/ablations/verifier_budget
"""
from __future__ import annotations

import json
import os


import ml_collections
import numpy as np

from s2jax.ablations import common as ablation
from s2jax import compute, report
from s2jax.data import gsm8k

NAME = "verifier_budget"


def prm_dir(config, workdir: str, seed: int, problems: int) -> str:
  if problems == config.pipeline.verifier.samples.train_problems:
    return os.path.join(ablation.pipeline_dir(workdir, seed), "verifier")
  return os.path.join(workdir, NAME, f"seed{seed}", f"prm{problems}")


def test_samples(config, workdir: str, seed: int) -> tuple[list, list]:
  """The test problems and max(ns) samples of each from the seed's SFT policy (cached)."""
  from s2jax.policy import Policy
  sft_dir = os.path.join(ablation.pipeline_dir(workdir, seed), "sft")
  records = gsm8k.read_jsonl(os.path.join(sft_dir, "data", "test.jsonl"))[:config.test_problems]
  p = config.pipeline.verifier.samples

  def draw():
    return {"samples": ablation.sample_answers(
        Policy(sft_dir), records, max(config.ns), seed=seed + 11,
        temperature=config.temperature, batch_size=config.batch_size,
        max_new_tokens=p.max_new_tokens, max_cache_len=p.max_cache_len)}
  cached = ablation.cached_json(os.path.join(workdir, NAME, f"seed{seed}", "samples.json"), draw)
  return records, cached["samples"]


def run_point(config, workdir: str, seed: int, arm: str) -> None:
  from s2jax.stages import verifier as verifier_stage
  if not arm.startswith("prm") or not arm[3:].isdigit():
    raise ValueError(f"unknown arm {arm!r}; expected prm<problems>")
  problems = int(arm[3:])
  pipe = ablation.run_pipeline(config, workdir, seed)
  d = prm_dir(config, workdir, seed, problems)
  if not report.is_done(d):
    c = ml_collections.ConfigDict(config.pipeline.verifier.to_dict())
    c.seed = seed
    c.policy_workdir = os.path.abspath(os.path.join(pipe, "sft"))
    steps = max(config.min_steps, int(round(config.steps_per_problem * problems)))
    c.samples.train_problems = problems
    c.train.update(steps=steps, checkpoint_every=steps)
    c.optim.update(decay_steps=steps, warmup_steps=min(c.optim.warmup_steps, steps // 5))
    verifier_stage.run(c, d)
  result_path = os.path.join(workdir, NAME, f"seed{seed}", f"bon_prm{problems}.json")

  def evaluate():
    records, samples = test_samples(config, workdir, seed)
    from s2jax import verifier
    scorer = verifier.Scorer.from_workdir(d, config.score_batch_size)
    acc = ablation.search_accuracies(records, samples, scorer, config.ns, config.aggregation)
    from s2jax.policy import Policy
    tok = Policy(os.path.join(pipe, "sft")).tokenizer()
    tokens = float(np.mean([len(tok.encode(r["question"])) + len(tok.encode(t)) + 2
                            for r, ts in zip(records, samples) for t in ts]))
    return {"accuracy": acc, "tokens_per_sample": tokens, "problems": len(records),
            "verifier_passes": compute.verifier_passes(d)}
  ablation.cached_json(result_path, evaluate)


def collect(config, workdir: str) -> dict:
  out = {}
  for seed in config.seeds:
    for problems in config.prm_problems:
      path = os.path.join(workdir, NAME, f"seed{seed}", f"bon_prm{problems}.json")
      if os.path.exists(path):
        with open(path) as f:
          out.setdefault(str(problems), {})[seed] = json.load(f)
  return out


def total_passes(r: dict, n: int, method: str = "prm_best") -> float:
  """What a (verifier, N) point costs: for PRM best-of-N the verifier's sampling and
  training, then N samples per test problem generated and (for N > 1) scored; majority
  vote needs no verifier, so it pays for generation only."""
  generate = n * r["problems"] * r["tokens_per_sample"] * compute.FORWARD
  if method == "majority":
    return generate
  score = generate if n > 1 else 0.0
  return r["verifier_passes"]["total"] + generate + score


def frontier_at(points: list, budget: float) -> dict:
  """The most accurate point that fits the budget, and every other fitting point the
  paired comparison on the same problems cannot tell from it (its 95% interval against
  the best includes 0): a best split is named only when nothing else is tied with it."""
  from s2jax import stats
  fits = [p for p in points if p["passes"] <= budget]
  best = max(fits, key=lambda p: p["accuracy"])
  tied = []
  for p in fits:
    if p is best:
      continue
    seeds = [k for k in best["per_problem"] if k in p["per_problem"]]
    c = stats.compare_pooled([(best["per_problem"][k], p["per_problem"][k]) for k in seeds])
    if c["ci"][0] <= 0 <= c["ci"][1]:
      tied.append(p["name"])
  return {"budget": budget, "best": best["name"], "accuracy": best["accuracy"],
          "tied": tied}


def against_majority(points: list) -> tuple[list, dict]:
  """Each PRM's best-of-N against majority vote over the same N samples, on the same
  problems pooled over seeds: the difference a verifier buys at a fixed generation budget,
  with its 95% interval, n and verdict (N = 1 is left out: both keep the one sample)."""
  from s2jax import stats
  majority = {p["n"]: p for p in points if p["method"] == "majority"}
  rows, data = [], {}
  for p in points:
    base = majority.get(p["n"])
    if p["method"] != "prm_best" or p["n"] == 1 or base is None:
      continue
    seeds = [k for k in p["per_problem"] if k in base["per_problem"]]
    if not seeds:
      continue
    c = stats.compare_pooled([(base["per_problem"][k], p["per_problem"][k]) for k in seeds])
    data[p["name"]] = c
    rows.append([p["name"].replace(", N=", " best-of-") + " vs majority vote",
                 f"{c['n']} ({c['seeds']} seeds)", *report.pooled_cells(c)])
  if not rows:
    return [], data
  return (["Each PRM's best-of-N against majority vote over the same N samples, paired on "
           "the same problems and pooled over seeds (95% stratified bootstrap interval; "
           "detectable = the smallest effect this n finds with 80% power; the verdict comes "
           "from the interval alone):", "",
           report.markdown_table(["comparison", "n problems", *report.POOLED_COLUMNS], rows),
           ""],
          data)


def _point(name: str, by_seed: dict, method: str, n: int) -> dict:
  """A (method, N) point over seeds: mean compute and accuracy, and its per-problem
  outcomes per seed (for the paired comparisons)."""
  return {"name": name, "method": method, "n": n,
          "passes": float(np.mean([total_passes(r, n, method) for r in by_seed.values()])),
          "accuracy": float(np.mean([r["accuracy"][method][str(n)] for r in by_seed.values()])),
          "per_problem": {seed: r["accuracy"]["per_problem"][method][str(n)]
                          for seed, r in by_seed.items()}}


def write(config, workdir: str, out: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  runs = collect(config, workdir)
  md = ablation.header("Ablation 5: verifier budget against generation budget",
                       "experiments/ablation.py", config, report.run_info())
  per = config.pipeline.verifier.samples.per_problem
  md += [f"PRMs trained on the SFT policy's samples of {list(config.prm_problems)} training "
         f"problems ({per} samples each, exact step labels, "
         f"{config.steps_per_problem} steps per problem, at least {config.min_steps}; the "
         f"pipeline's own PRM, on {config.pipeline.verifier.samples.train_problems} problems, "
         f"with its {config.pipeline.verifier.train.steps} steps); each "
         f"picks the best of N samples (temperature {config.temperature}, PRM-"
         f"{config.aggregation}) on the first {config.test_problems} in-distribution test "
         "problems. Compute in token-passes (`s2jax/compute.py`): the verifier's sampling and "
         "training plus, at test time, N samples per problem generated and scored.", ""]
  header = ["PRM problems", "verifier token-passes"] + [f"N={n}" for n in config.ns]
  rows, points = [], []
  fig, ax = plt.subplots(figsize=(5.6, 4))
  for problems, by_seed in runs.items():
    accs = [[r["accuracy"]["prm_best"][str(n)] for n in config.ns] for r in by_seed.values()]
    totals = np.mean([[total_passes(r, n) for n in config.ns] for r in by_seed.values()], 0)
    rows.append([problems, f"{np.mean([r['verifier_passes']['total'] for r in by_seed.values()]):.3g}"]
                + [ablation.fmt([a[i] for a in accs], 2) for i in range(len(config.ns))])
    ablation.band(ax, list(totals), accs, f"PRM on {problems} problems")
    points += [_point(f"PRM {problems} problems, N={n}", by_seed, "prm_best", n)
               for n in config.ns]
  first = next((by_seed for by_seed in runs.values() if by_seed), None)
  if first:  # majority vote: the same samples, no verifier
    maj = [[r["accuracy"]["majority"][str(n)] for n in config.ns] for r in first.values()]
    rows.append(["majority vote (no verifier)", "0"]
                + [ablation.fmt([a[i] for a in maj], 2) for i in range(len(config.ns))])
    points += [_point(f"majority vote, N={n}", first, "majority", n) for n in config.ns]
  md += [report.markdown_table(header, rows), ""]
  versus_md, versus = against_majority(points)
  md += versus_md
  # Iso-compute: at each budget, the best (method, PRM size, N) that fits, with the points
  # a paired test cannot tell from it.
  frontier = [frontier_at(points, b) for b in sorted({p["passes"] for p in points})]
  md += ["Best split at each total budget (mean accuracy over seeds; every point whose total "
         "compute fits, majority vote included; `tied` lists the points whose paired 95% "
         "interval against the best, on the same problems pooled over seeds, includes 0):",
         "", report.markdown_table(
             ["total token-passes", "best", "accuracy", "tied with the best"],
             [[f"{f['budget']:.3g}", f["best"], f"{f['accuracy']:.3f}",
               ", ".join(f["tied"]) or "none"] for f in frontier]), ""]
  ax.set_xscale("log")
  ax.set_xlabel("total token-passes (verifier + test-time samples)")
  ax.set_ylabel("best-of-N accuracy")
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(out + ".png", dpi=120)
  plt.close(fig)
  md += [f"![accuracy against total compute]({os.path.basename(out)}.png)", ""]
  ablation.write_result(out, md, {"runs": runs, "frontier": frontier,
                                       "against_majority": versus}, config, workdir)
