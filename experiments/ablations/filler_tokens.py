"""Ablation 4: direct answers, chain-of-thought and filler tokens; accuracy by depth.

  python experiments/ablations/filler_tokens.py --config=configs/ablations/filler_tokens.py \
      --workdir=workdirs/ablations --out=results/ablations/filler_tokens

The arms and their runs are s2jax/ablations/filler_tokens.py; --point, --dry_run and --report_only
are s2jax.cli.ablation's.
"""
from s2jax import cli
from s2jax.ablations import filler_tokens

if __name__ == "__main__":
  cli.ablation(filler_tokens)
