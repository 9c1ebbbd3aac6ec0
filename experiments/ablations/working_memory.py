"""Ablation 6: accuracy against the number of entities, by model width.

  python experiments/ablations/working_memory.py --config=configs/ablations/working_memory.py \
      --workdir=workdirs/ablations --out=results/ablations/working_memory

The arms and their runs are s2jax/ablations/working_memory.py; --point, --dry_run and --report_only
are s2jax.cli.ablation's.
"""
from s2jax import cli
from s2jax.ablations import working_memory

if __name__ == "__main__":
  cli.ablation(working_memory)
