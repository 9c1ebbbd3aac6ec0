"""Verifier-guided test-time search against plain sampling, at matched generated tokens.

  python experiments/search.py --config=configs/search_arith.py \
      --config.policy_workdir=workdirs/sft --config.prm_workdir=workdirs/prm \
      --config.orm_workdir=workdirs/orm --workdir=workdirs/search --out=results/search_arith

Per split: greedy decoding; max(ns) samples per problem, from which majority voting,
best-of-N by ORM and by PRM (min / product / last step), and PRM-weighted voting are
computed for every N (averaged over the disjoint N-subsets of the samples); PRM beam
search with backtracking at each budget. Compute is the number of generated tokens per
problem. Writes <workdir>/search.json (after every split) and, with --out, the markdown
table and the plot; `--report_from=<workdir>/search.json --out=...` rewrites the report
from a saved (possibly partial) run without computing anything.
"""
from __future__ import annotations

import json
import math
import os


import jax
import numpy as np
from absl import logging

from s2jax import report, search, sharding, verifier
from s2jax.config import require
from s2jax.policy import Policy
from s2jax.sampling import SamplingConfig


def validate(config) -> None:
  require(bool(config.policy_workdir), "policy_workdir", config.policy_workdir,
          "must name the SFT workdir")
  require(bool(config.prm_workdir), "prm_workdir", config.prm_workdir, "must name a PRM workdir")
  require(config.num_problems > 0, "num_problems", config.num_problems, "must be positive")
  require(all(max(config.ns) % n == 0 for n in config.ns), "ns", tuple(config.ns),
          "must all divide the largest N (samples are split into disjoint N-subsets)")
  for b in config.beam.budgets:
    require(math.isqrt(b) ** 2 == b, "beam.budgets", tuple(config.beam.budgets),
            "must be perfect squares (width = expansions = sqrt(budget))")


def run_split(config, policy: Policy, prm, orm, split: str) -> dict:
  s = config.sampling
  sampling = SamplingConfig(s.temperature, s.top_k, s.top_p)
  loaded = policy.load()
  params, tok, mesh = loaded.params, loaded.tokenizer, loaded.mesh
  problems_json = policy.samples(split, config.num_problems, 1, seed=config.seed,
                                 sampling=SamplingConfig(), batch_size=s.batch_size,
                                 max_new_tokens=s.max_new_tokens, max_cache_len=s.max_cache_len)
  task = policy.task
  problems = [task.from_json(r) for r in problems_json]
  questions = [p.question for p in problems]
  truth = [p.answer for p in problems]
  ntok = lambda text: len(tok.encode(text)) + 1  # generated ids, eos included
  out = {"n_problems": len(problems), "methods": {}}

  greedy = [r["samples"][0] for r in problems_json]
  out["greedy"] = {"accuracy": float(np.mean(
      [task.parse_answer(g) == t for g, t in zip(greedy, truth)])),
      "tokens": float(np.mean([ntok(g) for g in greedy]))}

  n_max = max(config.ns)
  recs = policy.samples(split, config.num_problems, n_max, seed=config.seed + 1,
                        sampling=sampling, batch_size=s.batch_size,
                        max_new_tokens=s.max_new_tokens, max_cache_len=s.max_cache_len)
  texts = [r["samples"] for r in recs]
  flat_q = [q for q in questions for _ in range(n_max)]
  flat_t = [t for ts in texts for t in ts]
  answers = [task.answers(ts) for ts in texts]
  tokens = np.asarray([[ntok(t) for t in ts] for ts in texts], float)
  step_scores = prm.step_scores(flat_q, [task.split_steps(t)[0] for t in flat_t])
  prm_by = {how: np.asarray([search.aggregate(x, how) for x in step_scores]).reshape(-1, n_max)
            for how in search.AGGREGATIONS}
  orm_scores = (orm.outcome_scores(flat_q, flat_t).reshape(-1, n_max) if orm is not None
                else None)

  # Ties are broken at random, counted by their expected accuracy (search.*_candidates).
  methods = {"majority vote": (search.majority_candidates, lambda i: (answers[i],))}
  if orm_scores is not None:
    methods["best-of-N ORM"] = (search.best_of_n_candidates,
                                lambda i: (answers[i], orm_scores[i]))
  for how in search.AGGREGATIONS:
    methods[f"best-of-N PRM-{how}"] = (search.best_of_n_candidates,
                                       lambda i, h=how: (answers[i], prm_by[h][i]))
  methods["weighted vote PRM-min"] = (search.weighted_vote_candidates,
                                      lambda i: (answers[i], prm_by["min"][i]))
  for name, (choose, cols) in methods.items():
    rows = []
    for n in config.ns:
      acc = np.mean([search.subset_accuracy(choose, n, n_max, truth[i], *cols(i))
                     for i in range(len(problems))])
      rows.append({"n": n, "accuracy": float(acc), "tokens": float(tokens.mean() * n)})
    out["methods"][name] = rows
  out["pass@N"] = [{"n": n, "accuracy": float(np.mean(
      [search.subset_accuracy(lambda a: truth[i] in a, n, n_max, True, answers[i])
       for i in range(len(problems))])), "tokens": float(tokens.mean() * n)}
      for n in config.ns]

  b = config.beam
  rows = []
  for budget in b.budgets:
    w = math.isqrt(budget)
    cfg = search.BeamConfig(width=w, expansions=w, threshold=b.threshold,
                            max_backtracks=b.max_backtracks, max_depth=b.max_depth,
                            aggregation=b.aggregation)
    propose = search.model_proposer(
        policy.sampler(s.max_cache_len), params, tok, questions, batch_size=b.batch_size,
        max_step_tokens=b.max_step_tokens, sampling=sampling,
        rng=jax.random.key(config.seed + 2 + budget), is_final_line=task.is_final_line,
        batch_sharding=sharding.batch_sharding(mesh, 2, b.batch_size))
    res = search.beam_search(len(problems), propose, search.model_step_scorer(prm, questions),
                             cfg, parse_answer=task.parse_answer)
    rows.append({"n": budget, "width": w, "expansions": w,
                 "accuracy": float(np.mean([r.answer == t for r, t in zip(res, truth)])),
                 "tokens": float(np.mean([r.tokens for r in res])),
                 "backtracks": float(np.mean([r.backtracks for r in res])),
                 "finished": float(np.mean([r.finished for r in res]))})
    logging.warning("%s beam %d: %s", split, budget, rows[-1])
  out["methods"]["PRM beam search"] = rows
  return out


def run(config, workdir: str) -> dict:
  validate(config)
  os.makedirs(workdir, exist_ok=True)
  policy = Policy(config.policy_workdir)
  prm = verifier.Scorer.from_workdir(config.prm_workdir, config.score_batch_size)
  orm = (verifier.Scorer.from_workdir(config.orm_workdir, config.score_batch_size)
         if config.orm_workdir else None)
  names = list(config.splits) or policy.task.eval_split_names(policy.config)
  result = {"run_info": report.run_info(), "config": config.to_dict(), "splits": {}}
  for split in names:
    result["splits"][split] = run_split(config, policy, prm, orm, split)
    if jax.process_index() == 0:
      with open(os.path.join(workdir, "search.json"), "w") as f:
        json.dump(result, f, indent=2, default=list)
  return result


def write_report(result: dict, out: str) -> None:
  """results/<name>.{md,json,png} from a search.json (machine-written, regenerable)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  with open(out + ".json", "w") as f:
    json.dump(result, f, indent=2, default=list)
  info = result["run_info"]
  md = ["# Verifier-guided search at matched compute", "",
        "Machine-written by `experiments/search.py` from its workdir's search.json.", "",
        f"- command: `{info['command']}`", f"- git commit: `{info['commit']}`",
        f"- started: {info['started']}",
        f"- policy: `{result['config']['policy_workdir']}`, PRM: "
        f"`{result['config']['prm_workdir']}`, ORM: `{result['config']['orm_workdir']}`",
        f"- sampling temperature {result['config']['sampling']['temperature']}; "
        "compute = generated tokens per problem (beam search counts every sampled candidate "
        "step, discarded ones included); N-sample methods average over the disjoint "
        "N-subsets of one draw of max(N) samples.",
        f"- splits in this report: {', '.join(result['splits'])}", ""]
  splits_ = result["splits"]
  fig, axes = plt.subplots(1, len(splits_), figsize=(4.2 * len(splits_), 3.8), squeeze=False)
  for ax, (split, r) in zip(axes[0], splits_.items()):
    md += [f"## {split} ({r['n_problems']} problems)", "",
           f"Greedy: accuracy {r['greedy']['accuracy']:.3f} at {r['greedy']['tokens']:.0f} "
           "tokens per problem.", ""]
    header = ["method"] + [f"N={x['n']}" for x in r["methods"]["majority vote"]]
    rows = []
    for name, xs in list(r["methods"].items()) + [("pass@N (oracle)", r["pass@N"])]:
      by_n = {x["n"]: x for x in xs}
      rows.append([name] + [f"{by_n[x['n']]['accuracy']:.3f} ({by_n[x['n']]['tokens']:.0f} tok)"
                            if x["n"] in by_n else "" for x in r["methods"]["majority vote"]])
      style = "--" if name.startswith("pass") else "-"
      ax.plot([x["tokens"] for x in xs], [x["accuracy"] for x in xs], style, marker="o",
              markersize=3, label=name, alpha=0.5 if name.startswith("pass") else 1.0)
    ax.plot([r["greedy"]["tokens"]], [r["greedy"]["accuracy"]], "k*", markersize=10,
            label="greedy")
    md += [report.markdown_table(header, rows), ""]
    beam = r["methods"]["PRM beam search"]
    md += ["Beam search: " + "; ".join(
        f"budget {x['n']} (width {x['width']} x {x['expansions']}): "
        f"{x['backtracks']:.2f} backtracks and {x['finished']:.2f} finished per problem"
        for x in beam), ""]
    ax.set_xscale("log")
    ax.set_title(split)
    ax.set_xlabel("generated tokens per problem")
    ax.set_ylabel("accuracy")
  axes[0][0].legend(fontsize=6)
  fig.tight_layout()
  fig.savefig(out + ".png", dpi=120)
  plt.close(fig)
  md += [f"![accuracy against generated tokens]({os.path.basename(out)}.png)", ""]
  with open(out + ".md", "w") as f:
    f.write("\n".join(md))
