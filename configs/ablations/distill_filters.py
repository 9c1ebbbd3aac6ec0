"""Ablation 2: verifier-filtered self-distillation against random sampling and answer-only
filtering (STaR), at matched data size.

  python experiments/ablation.py \
      --config=configs/ablations/distill_filters.py --workdir=workdirs/ablations \
      --out=results/ablations/distill_filters

Arms, per seed, all from the seed's SFT policy and PRM, on the same policy samples:
  prm_topk  the pipeline's distillation: the PRM's best sample of every problem
  correct   samples with the right final answer (STaR), capped at prm_topk's count
  random    a uniform subset of prm_topk's count
"""
from s2jax import config_blocks

ARMS = ("prm_topk", "correct", "random")


def get_config(arg: str = ""):
  c = config_blocks.ablation(__file__, arg)  # seeds and the shared pipeline
  c.arms = ARMS
  # Overrides of the pipeline's distill block per arm (prm_topk is the pipeline's run).
  c.filters = dict(correct={"kind": "correct", "size_of": "prm_topk"},
                   random={"kind": "random", "match": "prm_topk"})
  if arg == "tiny":  # seconds-long, for tests: the tiny pipeline, one seed
    c.arms = ("prm_topk", "random")  # an untrained policy answers nothing right
  return c


def points(c):
  return [f"seed{s}/{arm}" for s in c.seeds for arm in c.arms]
