"""On-policy RL from the SFT policy: PPO, GRPO or RLOO with step-level verifier rewards,
outcome rewards, or both (s2jax.stages.rl on the s2jax.rl learner).

  python experiments/ppo.py --config=configs/ppo_arith.py \
      --config.policy_workdir=workdirs/sft --config.prm_workdir=workdirs/prm \
      --workdir=workdirs/ppo
"""
from s2jax import cli
from s2jax.stages import rl


def summarize(out):
  if not out["evals"]:
    return
  first, last = out["evals"][0], out["evals"][-1]
  for split in last["accuracy"]:
    print(f"{split:>18}: {first['accuracy'][split]:.3f} -> {last['accuracy'][split]:.3f}")
  if "recovery_rate" in last:
    print(f"{'recovery rate':>18}: {first['recovery_rate']:.3f} -> {last['recovery_rate']:.3f}")


if __name__ == "__main__":
  cli.job(rl.run, summarize=summarize, workdir_help="Where checkpoints and metrics go.")
