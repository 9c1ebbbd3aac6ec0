"""Verifier-filtered self-distillation: rounds of sample -> filter -> fine-tune -> evaluate
(s2jax.stages.distill).

  python experiments/self_distill.py --config=configs/distill_arith.py \
      --config.policy_workdir=workdirs/sft --config.prm_workdir=workdirs/prm \
      --workdir=workdirs/distill
"""
from s2jax import cli
from s2jax.stages import distill


def summarize(log):
  for r in log["rounds"]:
    accs = "  ".join(f"{k}={v['accuracy']:.3f}" for k, v in r["eval"].items())
    kept = r.get("selection", {}).get("kept", "-")
    print(f"round {r['round']}: kept {kept}  {accs}")


if __name__ == "__main__":
  cli.job(distill.run, summarize=summarize, workdir_help="Where the rounds and rounds.json go.")
