"""SFT training throughput of two checkouts of the repository, measured in one run.

  python benchmarks/bench_sft_checkouts.py --before=/path/to/old/checkout [--after=.] \
      [--config=configs/arith.py] [--steps=120] [--rounds=2] [--out=results/bench_sft_loader.json]

Runs the same SFT command (`experiments/sft.py`, evaluation off) with each checkout's code,
alternating before/after `rounds` times so that the shared machine's drift hits both, and
reads the logged training rate (`targets_per_s`, loss tokens per second) of every log line
after the first (which holds the compile). Prints the median rate of each and their ratio.
Used to measure the data loader's change (Grain's batch order against the hand-written one).
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile

from common import sft_log_lines, write_result

from s2jax.report import git_commit


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--before", required=True, help="the older checkout's root")
  ap.add_argument("--after", default=".", help="the newer checkout's root")
  ap.add_argument("--config", default="configs/arith.py")
  ap.add_argument("--steps", type=int, default=120)
  ap.add_argument("--log_every", type=int, default=20)
  ap.add_argument("--rounds", type=int, default=2)
  ap.add_argument("--out", default=None)
  args = ap.parse_args()
  got = {"before": [], "after": []}
  with tempfile.TemporaryDirectory() as tmp:
    for r in range(args.rounds):
      for name in ("before", "after"):
        checkout = getattr(args, name)
        lines = sft_log_lines(checkout, args.config, args.steps, args.log_every,
                              os.path.join(tmp, f"{name}{r}"))
        got[name] += [m["targets_per_s"] for m in lines]
        print(f"round {r} {name}: median {statistics.median(got[name]):.0f} tokens/s",
              flush=True)
  med = {k: statistics.median(v) for k, v in got.items()}
  result = {"config": args.config, "steps": args.steps, "rounds": args.rounds,
            "before": os.path.abspath(args.before), "after": os.path.abspath(args.after),
            "before_commit": git_commit(args.before), "after_commit": git_commit(args.after),
            "targets_per_s": got, "median_targets_per_s": med,
            "after_over_before": med["after"] / med["before"]}
  print(f"SFT loss tokens/s: before {med['before']:.0f}, after {med['after']:.0f}, "
        f"after/before {result['after_over_before']:.3f}")
  if args.out:
    write_result(args.out, result)


if __name__ == "__main__":
  main()
