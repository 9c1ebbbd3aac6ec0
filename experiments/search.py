"""Verifier-guided search against N and generated tokens (s2jax.stages.search).

  python experiments/search.py --config=configs/search_arith.py \
      --config.policy_workdir=workdirs/sft --config.prm_workdir=workdirs/prm \
      --workdir=workdirs/search --out=results/search_arith
  python experiments/search.py --report_from=workdirs/search/search.json --out=results/search_arith
"""
from s2jax import cli
from s2jax.stages import search


def summarize(result):
  for split, r in result["splits"].items():
    line = "  ".join(f"{name}@{xs[-1]['n']}={xs[-1]['accuracy']:.3f}"
                     for name, xs in r["methods"].items())
    print(f"{split}: greedy={r['greedy']['accuracy']:.3f}  {line}")


if __name__ == "__main__":
  cli.job(search.run, summarize=summarize, write_report=search.write_report,
          workdir_help="Where search.json and sample caches go.")
