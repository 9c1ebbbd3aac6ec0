"""Ablation 3: domain shift. Accuracy against the number of reasoning steps (1 to 12) and
against the number of distractor entities, for the SFT, self-distilled and PPO policies,
greedy and with PRM best-of-N search.

  python experiments/ablation.py --config=configs/ablations/domain_shift.py \
      --workdir=workdirs/ablations --out=results/ablations/domain_shift
"""
from s2jax import config_blocks


def get_config(arg: str = ""):
  c = config_blocks.ablation(__file__, arg)  # seeds and the shared pipeline
  c.policies = ("sft", "distill", "ppo")  # pipeline stages
  # Each axis varies one task key from the training distribution (pipeline.sft.task).
  c.axes = dict(steps=(1, 2, 3, 4, 6, 8, 12), distractors=(0, 2, 4, 8))
  c.num_problems = 100         # per grid point, the same problems for every policy
  c.search = dict(n=4, temperature=0.8, aggregation="min")  # PRM best-of-n (0: greedy only)
  c.batch_size = 128
  c.score_batch_size = 64
  # 12 steps and the plan line: the longest reference is 324 tokens
  # (tests/test_budgets.py checks every grid point).
  c.max_new_tokens = 352
  c.max_cache_len = 704
  if arg == "tiny":  # seconds-long, for tests: the tiny pipeline, one seed
    c.axes = dict(steps=(1, 5), distractors=(0, 3))
    c.num_problems = 3
    c.search.n = 2
    c.batch_size = 8
    c.max_new_tokens = 32
    c.max_cache_len = 448
  return c


def points(c):
  return [f"seed{s}/{p}" for s in c.seeds for p in c.policies]
