"""Ablation 5: verifier budget against generation budget. PRMs trained on more or fewer of
the policy's samples (and steps in proportion), each used for best-of-N at several N;
at a fixed total compute (verifier sampling + training + test-time generation + scoring),
which split between verifier training and samples gives the best accuracy?

  python experiments/ablation.py \
      --config=configs/ablations/verifier_budget.py --workdir=workdirs/ablations \
      --out=results/ablations/verifier_budget
"""
from s2jax import config_blocks


def get_config(arg: str = ""):
  c = config_blocks.ablation(__file__, arg)  # seeds and the shared pipeline
  # Training problems for the PRM (x pipeline.verifier.samples.per_problem samples); the
  # pipeline's own PRM is the point equal to its samples.train_problems. Steps scale with
  # the data: steps_per_problem * problems (at least min_steps).
  c.prm_problems = (50, 150, 400, c.pipeline.verifier.samples.train_problems)
  c.steps_per_problem = 0.5
  c.min_steps = 25
  c.ns = (1, 2, 4, 8, 16)
  c.test_problems = 500   # in-distribution (the SFT workdir's test split): see a 5-point effect
  c.temperature = 0.8
  c.aggregation = "min"
  c.batch_size = 128
  c.score_batch_size = 64
  if arg == "tiny":  # seconds-long, for tests: the tiny pipeline, one seed
    c.prm_problems = (4, 8)
    c.steps_per_problem = 0.5
    c.min_steps = 2
    c.ns = (1, 2)
    c.test_problems = 3
    c.batch_size = 8
    c.score_batch_size = 8
  return c


def points(c):
  return [f"seed{s}/prm{p}" for s in c.seeds for p in c.prm_problems]
