"""The main job: SFT -> verifier -> self-distillation -> PPO -> search, then a report
(s2jax.pipeline) in <workdir>/report, or where --out says. An interrupted run continues
from its last finished stage.

  python experiments/pipeline.py --config=configs/pipeline.py --workdir=workdirs/pipeline
  python experiments/pipeline.py --report_from=workdirs/pipeline/report/metrics.json
"""
from s2jax import cli, pipeline


def summarize(metrics):
  for stage, row in metrics["accuracy"].items():
    print(f"{stage:>28}: " + "  ".join(f"{k}={v:.3f}" for k, v in row.items()))


if __name__ == "__main__":
  cli.job(pipeline.run, summarize=summarize, write_report=pipeline.write_report,
          workdir_help="Root of the stage workdirs.")
