"""Chain-of-thought SFT, then greedy evaluation on every split (s2jax.stages.sft).

  python experiments/sft.py --config=configs/arith.py --workdir=workdirs/sft
  python experiments/sft.py --config=configs/gsm8k_smollm2.py --workdir=workdirs/gsm8k_sft
"""
from s2jax import cli
from s2jax.stages import sft


def summarize(result):
  for name, s in result["eval"].items():
    print(f"{name:>20}: accuracy {s['accuracy']:.3f}  fully-valid chains {s['fully_valid']:.3f}"
          f"  (n={s['n']})")


if __name__ == "__main__":
  cli.job(sft.run, summarize=summarize)
