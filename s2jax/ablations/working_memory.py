"""Ablation 6: accuracy against the number of entities, by model width.

  python experiments/ablation.py \
      --config=configs/ablations/working_memory.py --workdir=workdirs/ablations \
      --out=results/ablations/working_memory
"""
from __future__ import annotations

import os


from s2jax.ablations import common as ablation
from s2jax import report

NAME = "working_memory"
AXES = {"entities_chain": "all on the chain (entities - 1 steps)",
        "entities_distractors": "2 steps, the rest distractors"}


def policy_name(config, width: int) -> str:
  """The width's scratch policy (ablation.scratch_policy) directory name."""
  return f"{config.scratch_sft.data.format}_d{width}"


def entity_grid(config, workdir: str, seed: int, width: int) -> dict:
  return ablation.evaluate_grid(
      ablation.scratch_policy(config, workdir, seed, width=width),
      config.scratch_sft.task.to_dict(),
      {axis: tuple(config.entities) for axis in AXES}, seed=seed,
      cache_dir=os.path.join(workdir, NAME, f"seed{seed}", f"grid_d{width}"),
      num_problems=config.num_problems, batch_size=config.batch_size,
      max_new_tokens=config.max_new_tokens, max_cache_len=config.max_cache_len)


def run_point(config, workdir: str, seed: int, arm: str) -> None:
  if not arm.startswith("d") or not arm[1:].isdigit():
    raise ValueError(f"unknown arm {arm!r}; expected d<width>")
  width = int(arm[1:])
  # Every width trains from scratch with the same SFT block (config.scratch_sft).
  entity_grid(config, workdir, seed, width)
  report.mark_done(os.path.join(workdir, NAME, f"seed{seed}", f"grid_d{width}"))


def write(config, workdir: str, out: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  runs = {}
  for width in config.widths:
    for seed in config.seeds:
      if report.is_done(os.path.join(workdir, NAME, f"seed{seed}", f"grid_d{width}")):
        runs.setdefault(width, {})[seed] = entity_grid(config, workdir, seed, width)
  task = config.scratch_sft.task
  md = ablation.header("Ablation 6: working memory: accuracy against the number of entities",
                       "experiments/ablation.py", config, report.run_info())
  md += ["SFT policies of each width (the pipeline's SFT config, `model.d_model` changed, "
         f"mlp 3x) trained on {task.min_steps}–{task.max_steps} steps with "
         f"{task.min_distractors}–{task.max_distractors} distractors. An entity is a named "
         "quantity in the question (the given one, every derived one, every distractor). "
         f"Greedy accuracy on {config.num_problems} problems per point and seed.", ""]
  fig, axes = plt.subplots(1, len(AXES), figsize=(5 * len(AXES), 3.8), squeeze=False)
  data = {}
  for ax, (axis, what) in zip(axes[0], AXES.items()):
    md += [f"## Entities {what}", ""]
    rows = []
    for width, by_seed in runs.items():
      per_seed = [[g[axis][str(e)]["greedy"] for e in config.entities] for g in by_seed.values()]
      data.setdefault(axis, {})[str(width)] = per_seed
      rows.append([f"d_model {width}"] + [ablation.fmt([s[i] for s in per_seed], 2)
                                          for i in range(len(config.entities))])
      ablation.band(ax, list(config.entities), per_seed, f"d_model {width}")
    md += [report.markdown_table(["policy"] + [str(e) for e in config.entities], rows), ""]
    base = config.scratch_sft.model.d_model
    if base in runs:  # each width against the pipeline's, on the same problems
      paired, stats = ablation.pooled_grid_comparisons(
          runs, axis, list(config.entities), {w: f"d_model {w}" for w in runs}, baseline=base)
      md += paired
      data.setdefault("paired", {})[axis] = stats
    ax.set_title(f"entities {what}", fontsize=9)
    ax.set_xlabel("entities in the problem")
    ax.set_ylabel("greedy accuracy")
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(out + ".png", dpi=120)
  plt.close(fig)
  md += [f"![accuracy against entities]({os.path.basename(out)}.png)", ""]
  ablation.write_result(out, md, {"accuracy": data}, config, workdir,
                        scratch=[policy_name(config, w) for w in config.widths])
