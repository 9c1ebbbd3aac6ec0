"""Ratios between bench_rl.py results run in alternation (the same policy, PRM and
iteration count, one round = one run of each arm): per round, each arm's median iteration
and phase seconds against the baseline arm's, so a ratio only ever divides two runs of the
same round.

  python benchmarks/compare_bench_rl.py --baseline=B_r1.json,B_r2.json \
      --arm=packed=P_r1.json,P_r2.json --arm=unpacked=U_r1.json,U_r2.json --out=S.json
"""
from __future__ import annotations

import argparse
import json

from common import write_result

PHASES = ("time_rollout", "time_scoring", "time_update")


def load(path: str) -> dict:
  with open(path) as f:
    d = json.load(f)
  return {"file": path, "commit": d["run_info"]["commit"], "command": d["run_info"]["command"],
          "iteration": d["result"]["median_iteration_seconds"],
          **{k: d["result"]["median_seconds"][k] for k in PHASES},
          "update_rows": d["result"].get("mean_update_rows"),
          # every iteration, compiles included, and the update shapes met (newer bench_rl)
          "total": d["result"].get("total_seconds"),
          "update_shapes": d["result"].get("update_shapes")}


def compare(baseline: list, arms: dict) -> dict:
  """{"rounds": [{arm: {seconds..., "speedup": baseline/arm per phase}}],
  "iteration_speedup_range": {arm: [lowest, highest]}}."""
  for name, runs in arms.items():
    if len(runs) != len(baseline):
      raise ValueError(f"arm {name!r} has {len(runs)} runs, the baseline {len(baseline)}")
  rounds = []
  for i, base in enumerate(baseline):
    row = {"baseline": base}
    for name, runs in arms.items():
      r = runs[i]
      keys = ("iteration", "total") + PHASES
      row[name] = dict(r, speedup={k: base[k] / r[k] for k in keys
                                   if base[k] is not None and r[k] is not None})
    rounds.append(row)
  spread = {name: [min(r[name]["speedup"]["iteration"] for r in rounds),
                   max(r[name]["speedup"]["iteration"] for r in rounds)] for name in arms}
  return {"rounds": rounds, "iteration_speedup_range": spread}


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--baseline", required=True, help="comma-separated result files, one a round")
  ap.add_argument("--arm", action="append", default=[], help="name=file,file,...")
  ap.add_argument("--out", default="")
  args = ap.parse_args()
  baseline = [load(p) for p in args.baseline.split(",")]
  arms = {}
  for a in args.arm:
    name, _, files = a.partition("=")
    arms[name] = [load(p) for p in files.split(",")]
  out = compare(baseline, arms)
  for i, r in enumerate(out["rounds"]):
    print(f"round {i + 1}: baseline {r['baseline']['iteration']:.2f}s; " + "; ".join(
        f"{n} {r[n]['iteration']:.2f}s ({r[n]['speedup']['iteration']:.2f}x, update "
        f"{r[n]['speedup']['time_update']:.2f}x"
        + (f", all iterations {r[n]['speedup']['total']:.2f}x" if "total" in r[n]["speedup"]
           else "") + ")" for n in arms))
  write_result(args.out, out)


if __name__ == "__main__":
  main()
