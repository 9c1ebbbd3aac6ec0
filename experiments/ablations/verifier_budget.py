"""Ablation 5: how to split a fixed compute between verifier training and samples.

  python experiments/ablations/verifier_budget.py --config=configs/ablations/verifier_budget.py \
      --workdir=workdirs/ablations --out=results/ablations/verifier_budget

The arms and their runs are s2jax/ablations/verifier_budget.py; --point, --dry_run and --report_only
are s2jax.cli.ablation's.
"""
from s2jax import cli
from s2jax.ablations import verifier_budget

if __name__ == "__main__":
  cli.ablation(verifier_budget)
