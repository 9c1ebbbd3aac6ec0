"""Ablation 2: PRM-filtered self-distillation against STaR and random samples, matched size.

  python experiments/ablations/distill_filters.py --config=configs/ablations/distill_filters.py \
      --workdir=workdirs/ablations --out=results/ablations/distill_filters

The arms and their runs are s2jax/ablations/distill_filters.py; --point, --dry_run and --report_only
are s2jax.cli.ablation's.
"""
from s2jax import cli
from s2jax.ablations import distill_filters

if __name__ == "__main__":
  cli.ablation(distill_filters)
