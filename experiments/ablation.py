"""Run an ablation: every (seed, arm) point in turn (finished ones are skipped), then its
report (<workdir>/<name>/report.md, or --out, e.g. results/ablations/<name>); or one point (--point, e.g. one TPU job each), the list of
per-point commands (--dry_run), or only the report (--report_only). The config file names
the ablation (configs/ablations/<name>.py runs s2jax/ablations/<name>.py).

  python experiments/ablation.py --config=configs/ablations/rl_vs_sft.py \
      --workdir=workdirs/ablations --out=results/ablations/rl_vs_sft
  python experiments/ablation.py --config=configs/ablations/rl_vs_sft.py --point=seed1/sft_more
"""
from s2jax import cli

if __name__ == "__main__":
  cli.ablation()
