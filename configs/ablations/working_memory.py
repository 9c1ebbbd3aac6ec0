"""Ablation 6: working-memory scaling (the paper's open question 3). Accuracy as the number
of entities in the problem grows, all of them on the reasoning chain or all but three of
them distractors, for policies of several widths.

  python experiments/ablation.py \
      --config=configs/ablations/working_memory.py --workdir=workdirs/ablations \
      --out=results/ablations/working_memory
"""
from s2jax import config_blocks


def get_config(arg: str = ""):
  c = config_blocks.ablation(__file__, arg)  # seeds and the shared pipeline
  # SFT policies of these widths (model.d_model; mlp_dim = 3x), each trained from scratch
  # with the ablations' one SFT block (scratch_sft), the width changed; the paired table
  # compares each with scratch_sft's own width. Three widths at least, so that a trend
  # is more than two points; the narrow ones are cheap on CPU.
  c.widths = (32, 64, 128)
  c.entities = (3, 5, 7, 9, 13)
  c.num_problems = 100  # per point; comparisons pool points and seeds
  c.batch_size = 128
  c.max_new_tokens = 320
  c.max_cache_len = 704
  if arg == "tiny":  # seconds-long, for tests: the tiny pipeline, one seed
    c.widths = (16, 32)
    c.entities = (3, 5)
    c.num_problems = 3
    c.batch_size = 8
    c.max_new_tokens = 32
    c.max_cache_len = 448
  return c


def points(c):
  return [f"seed{s}/d{w}" for s in c.seeds for w in c.widths]
