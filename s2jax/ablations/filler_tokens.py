"""Ablation 4: direct answers, chain-of-thought and filler tokens; accuracy by depth.

  python experiments/ablation.py --config=configs/ablations/filler_tokens.py \
      --workdir=workdirs/ablations --out=results/ablations/filler_tokens
"""
from __future__ import annotations

import os


from s2jax.ablations import common as ablation
from s2jax import report

NAME = "filler_tokens"
LABELS = {"cot": "chain of thought", "direct": "direct answer", "filler": "filler tokens"}


def policy_name(config, arm: str) -> str:
  """The arm's scratch policy (ablation.scratch_policy) directory name."""
  return f"{arm}_d{config.scratch_sft.model.d_model}"


def depth_grid(config, workdir: str, seed: int, arm: str) -> dict:
  return ablation.evaluate_grid(
      ablation.scratch_policy(config, workdir, seed, fmt=arm), config.scratch_sft.task.to_dict(),
      {"steps": tuple(config.depths)}, seed=seed,
      cache_dir=os.path.join(workdir, NAME, f"seed{seed}", f"grid_{arm}"),
      num_problems=config.num_problems, batch_size=config.batch_size,
      max_new_tokens=config.max_new_tokens, max_cache_len=config.max_cache_len)["steps"]


def run_point(config, workdir: str, seed: int, arm: str) -> None:
  if arm not in ("cot", "direct", "filler"):
    raise ValueError(f"unknown arm {arm!r}; known: cot, direct, filler")
  # Every arm, chain of thought included, trains from scratch with the same SFT block
  # (config.scratch_sft), so the arms differ only in their training targets.
  depth_grid(config, workdir, seed, arm)


def write(config, workdir: str, out: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  runs = {}
  for arm in config.arms:
    for seed in config.seeds:
      cache = os.path.join(workdir, NAME, f"seed{seed}", f"grid_{arm}")
      if all(os.path.exists(os.path.join(cache, f"grid_steps_{d}.json")) for d in config.depths):
        runs.setdefault(arm, {})[seed] = depth_grid(config, workdir, seed, arm)
  task = config.scratch_sft.task
  md = ablation.header("Ablation 4: filler tokens against chain of thought",
                       "experiments/ablation.py", config, report.run_info())
  md += ["Three policies per seed, the same SFT config and data, differing only in the "
         "training targets: the reference chain of thought; `#### N` alone; and a line of "
         "'.' filler tokens, as many tokens as the chain of thought has, then `#### N` "
         "(`s2jax/data/formats.py`). Trained on "
         f"{task.min_steps}–{task.max_steps} steps; greedy accuracy on "
         f"{config.num_problems} problems per depth (number of reasoning steps) and seed.", ""]
  header = ["training target"] + [str(d) for d in config.depths]
  rows, data = [], {}
  fig, ax = plt.subplots(figsize=(5.2, 3.8))
  for arm, by_seed in runs.items():
    per_seed = [[g[str(d)]["greedy"] for d in config.depths] for g in by_seed.values()]
    data[arm] = per_seed
    rows.append([LABELS[arm]] + [ablation.fmt([s[i] for s in per_seed], 2)
                                 for i in range(len(config.depths))])
    ablation.band(ax, list(config.depths), per_seed, LABELS[arm])
  ax.axvspan(task.min_steps - 0.3, task.max_steps + 0.3, color="grey", alpha=0.12,
             label="training range")
  ax.set_xlabel("problem depth (reasoning steps)")
  ax.set_ylabel("greedy accuracy")
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(out + ".png", dpi=120)
  plt.close(fig)
  md += [report.markdown_table(header, rows), "",
         f"![accuracy by depth]({os.path.basename(out)}.png)", ""]
  # The claim: do filler tokens buy what a chain of thought buys over a direct answer?
  grids = {arm: {seed: {"steps": g} for seed, g in by_seed.items()}
           for arm, by_seed in runs.items()}
  for base in ("direct", "filler"):
    if base in grids:
      paired, stats = ablation.pooled_grid_comparisons(
          {a: g for a, g in grids.items() if a != "direct" or base == "direct"}, "steps",
          list(config.depths), LABELS, baseline=base)
      md += paired
      data.setdefault("paired", {}).update(stats)
  ablation.write_result(out, md, {"accuracy_by_depth": data}, config, workdir,
                        scratch=[policy_name(config, arm) for arm in config.arms])
