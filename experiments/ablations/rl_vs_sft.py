"""Ablation 1: does verifier + RL beat plain fine-tuning at matched training compute?

  python experiments/ablations/rl_vs_sft.py --config=configs/ablations/rl_vs_sft.py \
      --workdir=workdirs/ablations --out=results/ablations/rl_vs_sft

The arms and their runs are s2jax/ablations/rl_vs_sft.py; --point, --dry_run and --report_only
are s2jax.cli.ablation's.
"""
from s2jax import cli
from s2jax.ablations import rl_vs_sft

if __name__ == "__main__":
  cli.ablation(rl_vs_sft)
