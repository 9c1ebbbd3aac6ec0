"""A policy's headroom: greedy accuracy against pass@k on the same problems (s2jax.headroom).

  python experiments/headroom.py --config=configs/headroom.py \
      --config.policy_workdir=workdirs/base_policy --workdir=workdirs/headroom \
      --out=results/base_policy_headroom
"""
import ml_collections

from s2jax import config_blocks


def get_config(arg: str = ""):
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.policy_workdir = ""
  c.split = "test"
  c.problems = 500
  c.samples = 16
  c.ks = (1, 2, 4, 8, 16)
  # The search stage's sampling (configs/search_arith.py); 0 budgets take the policy's own
  # eval.max_new_tokens and eval.max_cache_len.
  c.sampling = dict(temperature=0.8, top_k=0, top_p=1.0, batch_size=128, max_new_tokens=0,
                    max_cache_len=0)
  c.save_outputs = True
  if "tiny" in config_blocks.words(arg, ("tiny",), __file__):  # seconds-long, for tests
    c.problems = 4
    c.samples = 4
    c.ks = (1, 2, 4)
    c.sampling.update(batch_size=16)
  return c
