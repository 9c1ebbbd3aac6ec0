"""Ablation 4: filler tokens (Pfau et al. 2024, "Let's think dot by dot"). Policies trained
to answer directly, with chain-of-thought, and with as many meaningless filler tokens as
the chain of thought has before the answer (s2jax/data/formats.py); accuracy by depth.

  python experiments/ablation.py --config=configs/ablations/filler_tokens.py \
      --workdir=workdirs/ablations --out=results/ablations/filler_tokens
"""
from s2jax import config_blocks

ARMS = ("cot", "direct", "filler")


def get_config(arg: str = ""):
  c = config_blocks.ablation(__file__, arg)  # seeds and the shared pipeline
  c.arms = ARMS  # cot is the seed's pipeline SFT; the others train the same SFT config
  c.depths = (1, 2, 3, 4, 6, 8)
  c.num_problems = 100  # per depth; comparisons pool depths and seeds
  c.batch_size = 128
  c.max_new_tokens = 224
  c.max_cache_len = 576
  if arg == "tiny":  # seconds-long, for tests: the tiny pipeline, one seed
    c.depths = (1, 3)
    c.num_problems = 3
    c.batch_size = 8
    c.max_new_tokens = 32
    c.max_cache_len = 448
  return c


def points(c):
  return [f"seed{s}/{arm}" for s in c.seeds for arm in c.arms]
