"""A step-level (PRM) or outcome (ORM) verifier on the SFT policy's own samples, measured
against exact step labels on held-out problems (s2jax.stages.verifier).

  python experiments/train_verifier.py --config=configs/verifier_arith.py \
      --config.policy_workdir=workdirs/sft --workdir=workdirs/prm
"""
from s2jax import cli
from s2jax import verifier_metrics as vm
from s2jax.stages import verifier


def summarize(summary):
  for split, r in summary.items():
    if split == "data":
      continue
    step = f"step AUROC {vm.describe_auroc(r)}  " if "auroc" in r else ""
    print(f"{split:>18}: {step}solution AUROC {r['solution_auroc']:.3f}  (n={r['solutions']})")


if __name__ == "__main__":
  cli.job(verifier.run, summarize=summarize,
          workdir_help="Where checkpoints, labels and metrics go.")
