"""Test-time search on the synthetic task: voting, best-of-N (ORM, PRM), weighted voting
and PRM beam search, at matched generated tokens, in-distribution and shifted.

  python experiments/search.py --config=configs/search_arith.py \
      --config.policy_workdir=workdirs/sft --config.prm_workdir=workdirs/prm \
      --config.orm_workdir=workdirs/orm --workdir=workdirs/search --out=results/search_arith
"""
import ml_collections

from s2jax import config_blocks


def get_config(arg: str = ""):
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.policy_workdir = ""
  c.prm_workdir = ""
  c.orm_workdir = ""        # optional: best-of-N by ORM is skipped without it
  c.splits = ()             # () = every evaluation split of the policy workdir
  c.num_problems = 30       # per split
  c.ns = (1, 2, 4, 8, 16, 32, 64)
  c.sampling = dict(temperature=0.8, top_k=0, top_p=1.0, batch_size=128, max_new_tokens=192,
                    max_cache_len=576)
  # Beam search at budget N: width = expansions = sqrt(N) candidate steps per beam.
  c.beam = dict(budgets=(4, 16), threshold=0.5, max_backtracks=2, max_depth=12,
                max_step_tokens=48, aggregation="min", batch_size=128)
  c.score_batch_size = 64
  if "tiny" in config_blocks.words(arg, ("tiny",), __file__):  # seconds-long, for tests
    c.num_problems = 3
    c.ns = (1, 2, 4)
    c.sampling.update(batch_size=16, max_new_tokens=48, max_cache_len=448)
    c.beam.update(budgets=(4,), max_depth=4, max_step_tokens=24, batch_size=16)
    c.score_batch_size = 16
  return c
