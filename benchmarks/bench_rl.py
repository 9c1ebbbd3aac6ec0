"""One RL iteration's wall time, split into rollout, scoring and update.

  python benchmarks/bench_rl.py --policy_workdir=W --prm_workdir=P [--iterations=6] \
      [--set rl.algorithm=grpo --set rl.group_size=4 --set rollout.prompts=8] [--out=F.json]

Runs `s2jax.rl.learner.Learner` (the code the RL experiment runs) for a few iterations in a
scratch workdir with configs/ppo_arith.py plus overrides, and reports per phase the median
over the iterations after the first (which compiles), the fraction of the iteration each
phase takes, and rollout tokens per second (generated tokens / rollout wall time).
Rollouts are cut to the smallest of a few fixed widths (s2jax.rl.rollouts.update_widths:
one, the budget, for a packed update; three otherwise; `--set rollout.response_widths=3`
sets it) that holds the longest response; each iteration's row records whether its update
shape was new (compiled there), and the result the time of all iterations, compiles
included, and how many shapes were met. The update
runs on packed rows (RLConfig.pack, the config's default), whose count comes from a few
fixed ones; each row records it (`update_rows`); `--set rl.pack=False` runs it unpacked.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

from common import device_name, write_result

import numpy as np

from s2jax.config import load_config_file
from s2jax.rl.learner import Learner

PHASES = ("time_rollout", "time_scoring", "time_update")


def parse_value(text: str):
  for cast in (int, float):
    try:
      return cast(text)
    except ValueError:
      pass
  return {"true": True, "false": False}.get(text.lower(), text)


def _median(xs):
  return float(np.median(xs)) if xs else None


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--config", default=os.path.join(
      os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "ppo_arith.py"))
  ap.add_argument("--policy_workdir", required=True)
  ap.add_argument("--prm_workdir", default="")
  ap.add_argument("--iterations", type=int, default=6)
  ap.add_argument("--set", action="append", default=[], help="dotted.key=value override")
  ap.add_argument("--out", default="")
  args = ap.parse_args()

  config = load_config_file(args.config)
  config.policy_workdir, config.prm_workdir = args.policy_workdir, args.prm_workdir
  if not args.prm_workdir:
    config.rewards.step_weight = 0.0
  for item in args.set:
    key, value = item.split("=", 1)
    *path, leaf = key.split(".")
    node = config
    for p in path:
      node = node[p]
    if leaf not in node:
      sys.exit(f"error: unknown config key {key!r}")
    node[leaf] = parse_value(value)
  rows = []
  with tempfile.TemporaryDirectory() as workdir:
    trainer = Learner(config, workdir)
    for it in range(args.iterations):
      m = trainer.iteration(it)
      rows.append({k: m[k] for k in PHASES + ("rollout_tokens_per_s", "response_tokens",
                                              "update_width", "update_rows")})
      # A new update shape compiles (rows change only with rl.pack).
      shape = lambda r: (r["update_rows"], r["update_width"])
      rows[-1]["new_width"] = all(shape(r) != shape(rows[-1]) for r in rows[:-1])
      print(f"iteration {it}: " + "  ".join(f"{k[5:]} {m[k]:.2f}s" for k in PHASES)
            + f"  rollout {m['rollout_tokens_per_s']:.0f} tok/s", flush=True)
    trainer.ckpt.close()
  steady = rows[1:] or rows
  med = {k: float(np.median([r[k] for r in steady])) for k in PHASES}
  total = sum(med.values())
  result = {
      "device": device_name(), "rows_per_iteration": trainer.rows,
      "algorithm": config.rl.algorithm, "epochs": config.rl.epochs,
      "minibatches": config.rl.minibatches, "shared_trunk": bool(config.value.shared_trunk),
      "packed_update": bool(config.rl.get("pack", False)),
      "mean_update_rows": float(np.mean([r["update_rows"] for r in steady])),
      "max_new_tokens": config.rollout.max_new_tokens,
      "median_seconds": med, "median_iteration_seconds": total,
      "fraction": {k: v / total for k, v in med.items()},
      "rollout_tokens_per_s": float(np.median([r["rollout_tokens_per_s"] for r in steady])),
      "mean_response_tokens": float(np.mean([r["response_tokens"] for r in steady])),
      "first_iteration_seconds": {k: rows[0][k] for k in PHASES},
      # What compiling costs against padding: every iteration's time (compiles included),
      # the update shapes met, and the update's median with and without a new shape.
      "total_seconds": float(sum(r[k] for r in rows for k in PHASES)),
      "update_shapes": sum(r["new_width"] for r in rows),
      "median_update_seconds_new_shape": _median([r["time_update"] for r in rows
                                                  if r["new_width"]]),
      "median_update_seconds_known_shape": _median([r["time_update"] for r in rows
                                                    if not r["new_width"]]),
      "iterations": rows}
  print(f"median iteration {total:.2f}s: " + ", ".join(
      f"{k[5:]} {med[k]:.2f}s ({100 * med[k] / total:.0f}%)" for k in PHASES)
      + f"; rollout {result['rollout_tokens_per_s']:.0f} tokens/s ({device_name()})")
  print(f"all {args.iterations} iterations {result['total_seconds']:.1f}s, "
        f"{result['update_shapes']} update shapes compiled")
  write_result(args.out, result)


if __name__ == "__main__":
  main()
