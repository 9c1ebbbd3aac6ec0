"""Ablation 3: accuracy against reasoning steps and distractors, per policy, with and without
PRM search.

  python experiments/ablations/domain_shift.py --config=configs/ablations/domain_shift.py \
      --workdir=workdirs/ablations --out=results/ablations/domain_shift

The arms and their runs are s2jax/ablations/domain_shift.py; --point, --dry_run and --report_only
are s2jax.cli.ablation's.
"""
from s2jax import cli
from s2jax.ablations import domain_shift

if __name__ == "__main__":
  cli.ablation(domain_shift)
