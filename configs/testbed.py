"""SFT learning curves for the pipeline's policy: which options buy accuracy.

  python experiments/sweep.py --config=configs/testbed.py --sweep=options \
      --script=experiments/sft.py --workdir_root=workdirs/testbed
  python experiments/report_testbed.py --workdir_root=workdirs/testbed --out=results/testbed

The base is the pipeline's SFT block (configs/pipeline.py) trained longer, with greedy
accuracy and fully valid chains by depth on the in-distribution test problems every
`train.eval_every` steps; each point of `options()` changes one thing or a few.
"""
from s2jax import config_blocks

STEPS = 1500


def get_config(arg: str = ""):
  config_blocks.words(arg, (), __file__)
  c = config_blocks.sibling(__file__, "pipeline.py", "scratch").sft
  c.train.update(steps=STEPS, eval_every=250, checkpoint_every=250)
  c.optim.update(decay_steps=STEPS)
  return c


PLAN_CALC = {"data.format": "plan", "eval.calculator": True, "data.tool_tokens": "mask"}


def options():
  """(name, overrides) at equal steps: the calculator (cot against cot_calc) and the plan
  line (cot_calc against plan_calc). The option kept then trains longer on more problems
  as the base policy (configs/base_policy.py)."""
  return [
      ("cot", {}),
      ("plan_calc", PLAN_CALC),
      ("cot_calc", {"eval.calculator": True, "data.tool_tokens": "mask"}),
  ]
