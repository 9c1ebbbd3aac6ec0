"""The base policy the pipeline starts from (s2jax/assets/arith_base, `sft.init_from`).

  python experiments/base_policy.py --config=configs/base_policy.py --workdir=workdirs/base_policy

The pipeline's SFT block (configs/pipeline.py: same task, model and evaluation) with the
options results/testbed.md keeps: the planned chain of thought, the calculator with its
tokens out of the loss, and a longer run on more problems than fit the pipeline's budget.
"""
from s2jax import config_blocks

STEPS = 4000


def get_config(arg: str = ""):
  config_blocks.words(arg, (), __file__)
  c = config_blocks.sibling(__file__, "pipeline.py", "scratch").sft
  c.init_from = ""  # trained from scratch
  # Its own problem streams: no pipeline seed (0, 1, 2, ...) trains or evaluates on them.
  c.seed = 1000
  c.data.update(format="plan", tool_tokens="mask", num_train=40000)
  c.eval.calculator = True
  c.train.update(steps=STEPS, eval_every=500, checkpoint_every=250)
  c.optim.update(decay_steps=STEPS)
  return c
