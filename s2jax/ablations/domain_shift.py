"""Ablation 3: accuracy against reasoning steps and distractors, per policy, with and
without PRM search.

  python experiments/ablation.py --config=configs/ablations/domain_shift.py \
      --workdir=workdirs/ablations --out=results/ablations/domain_shift
"""
from __future__ import annotations

import os


from s2jax.ablations import common as ablation
from s2jax import report

NAME = "domain_shift"
LABELS = {"sft": "SFT", "distill": "self-distilled", "ppo": "PPO"}


def grid_dir(workdir: str, seed: int, policy: str) -> str:
  return os.path.join(workdir, NAME, f"seed{seed}", policy)


def grid(config, workdir: str, seed: int, policy: str) -> dict:
  pipe = ablation.run_pipeline(config, workdir, seed)
  return ablation.evaluate_grid(
      ablation.stage_policy(config, workdir, seed, policy), config.pipeline.sft.task.to_dict(),
      config.axes.to_dict(), seed=seed, cache_dir=grid_dir(workdir, seed, policy),
      num_problems=config.num_problems, batch_size=config.batch_size,
      max_new_tokens=config.max_new_tokens, max_cache_len=config.max_cache_len,
      prm_workdir=os.path.join(pipe, "verifier"), search=config.search.to_dict(),
      score_batch_size=config.score_batch_size)


def run_point(config, workdir: str, seed: int, policy: str) -> None:
  if policy not in config.policies:
    raise ValueError(f"unknown policy {policy!r}; known: {tuple(config.policies)}")
  grid(config, workdir, seed, policy)
  report.mark_done(grid_dir(workdir, seed, policy))


def collect(config, workdir: str) -> dict:
  """{policy: {seed: grid}} of finished points."""
  out = {}
  for policy in config.policies:
    for seed in config.seeds:
      if report.is_done(grid_dir(workdir, seed, policy)):
        out.setdefault(policy, {})[seed] = grid(config, workdir, seed, policy)
  return out


def write(config, workdir: str, out: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  runs = collect(config, workdir)
  task = config.pipeline.sft.task
  n = config.search.n
  md = ablation.header("Ablation 3: accuracy under domain shift (steps, distractors)",
                       "experiments/ablation.py", config, report.run_info())
  md += [f"Policies trained on {task.min_steps}–{task.max_steps} steps with "
         f"{task.min_distractors}–{task.max_distractors} distractors (the other task keys as "
         "in training); each grid point moves one of the two, "
         f"{config.num_problems} problems per point and seed. Greedy decoding, and PRM "
         f"best-of-{n} (aggregation `{config.search.aggregation}`, temperature "
         f"{config.search.temperature}) with the seed's PRM; majority vote over the same "
         f"{n} samples for reference.", ""]
  fig, axes = plt.subplots(1, len(config.axes), figsize=(5 * len(config.axes), 3.8),
                           squeeze=False)
  data = {}
  ordered = sorted(config.axes.items(), key=lambda kv: kv[0] != "steps")
  for ax, (axis, values) in zip(axes[0], ordered):
    md += [f"## Accuracy against {axis}", ""]
    header = ["policy", "decoding"] + [str(v) for v in values]
    rows = []
    for policy, by_seed in runs.items():
      kinds = [("greedy", lambda r: r["greedy"])]
      if n:
        kinds += [(f"PRM best-of-{n}", lambda r: r["prm_best"][str(n)]),
                  (f"majority@{n}", lambda r: r["majority"][str(n)])]
      for kind, get in kinds:
        per_seed = [[get(g[axis][str(v)]) for v in values] for g in by_seed.values()]
        data.setdefault(axis, {}).setdefault(policy, {})[kind] = per_seed
        rows.append([LABELS.get(policy, policy), kind]
                    + [ablation.fmt([s[i] for s in per_seed], 2) for i in range(len(values))])
        if kind.startswith("majority"):
          continue
        ablation.band(ax, list(values), per_seed,
                              f"{LABELS.get(policy, policy)} {kind}",
                              "-" if kind == "greedy" else "--",
                              color=f"C{list(runs).index(policy)}")
    md += [report.markdown_table(header, rows), ""]
    lo = getattr(task, f"min_{axis}")
    hi = getattr(task, f"max_{axis}")
    beyond = [v for v in values if not lo <= v <= hi]  # the shift itself
    paired, stats = ablation.pooled_grid_comparisons(runs, axis, beyond, LABELS,
                                                     search_n=n)
    md += paired
    data.setdefault("paired", {})[axis] = stats
    ax.axvspan(lo - 0.3, hi + 0.3, color="grey", alpha=0.12, label="training range")
    ax.set_xlabel(f"number of {axis}")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=6)
  fig.tight_layout()
  fig.savefig(out + ".png", dpi=120)
  plt.close(fig)
  md += [f"![accuracy under shift]({os.path.basename(out)}.png)", ""]
  ablation.write_result(out, md, {"curves": data}, config, workdir)
