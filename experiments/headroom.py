"""A policy's headroom: greedy accuracy against pass@k on the same problems.

  python experiments/headroom.py --config=configs/headroom.py \
      --config.policy_workdir=workdirs/base_policy --workdir=workdirs/headroom \
      --out=results/base_policy_headroom
"""
from s2jax import cli, headroom


def summarize(result):
  s = result["summary"]
  print(f"greedy accuracy {s['greedy_correct']['rate']:.3f}, fully valid "
        f"{s['greedy_fully_valid']['rate']:.3f}, "
        + ", ".join(f"pass@{d['k']} {d['rate']:.3f}" for d in s["pass_at_k_correct"])
        + f" (n={s['n']})")


if __name__ == "__main__":
  cli.job(headroom.run, summarize=summarize, write_report=headroom.write_report)
