"""The base policy the pipeline starts from (s2jax/assets/arith_base, `sft.init_from`).

  python experiments/base_policy.py --config=configs/base_policy.py --workdir=workdirs/base_policy

The pipeline's SFT block (configs/pipeline.py: same task, model and evaluation) with the
options results/testbed.md keeps: the planned chain of thought and the calculator with its
tokens out of the loss. It is trained in two phases, each an SFT run of its own:

* `:scratch4k`: 4,000 steps from scratch on 40,000 problems, shipped as
  s2jax/assets/arith_sft4k (`--export_to=s2jax/assets/arith_sft4k`);
* the default: SFT continued from arith_sft4k for 4,000 steps on 128,000 more problems
  (one pass) with a second, lower cosine schedule, with a learning curve on 500 held-out
  problems (results/testbed.md). This is the shipped arith_base.
"""
from s2jax import config_blocks

SCRATCH_STEPS = 4000
CONTINUE_STEPS = 4000
BATCH = 32
HELDOUT = 500  # the learning curve's fixed held-out problems (the test split's first 500)


def get_config(arg: str = ""):
  words = config_blocks.words(arg, ("scratch4k",), __file__)
  c = config_blocks.sibling(__file__, "pipeline.py", "scratch").sft
  # Its own problem streams: no pipeline seed (0, 1, 2, ...) trains or evaluates on them.
  c.seed = 1000
  c.data.update(format="plan", tool_tokens="mask")
  c.eval.calculator = True
  if "scratch4k" in words:
    c.init_from = ""  # trained from scratch
    c.data.update(num_train=40000)
    c.train.update(steps=SCRATCH_STEPS, eval_every=500, checkpoint_every=250)
    c.optim.update(decay_steps=SCRATCH_STEPS)
    return c
  c.init_from = "arith_sft4k"
  # The first phase's 40,000 problems and as many new ones from the same stream as this
  # phase draws examples: one pass, no example seen twice in this phase.
  c.data.update(num_train=40000 + CONTINUE_STEPS * BATCH, num_eval=HELDOUT)
  c.eval.update(curve_problems=HELDOUT)
  c.train.update(steps=CONTINUE_STEPS, batch_size=BATCH, eval_every=CONTINUE_STEPS // 8,
                 checkpoint_every=250)
  # The first phase ended at 3e-4 (0.1 x 3e-3); a second, lower cosine from there.
  c.optim.update(lr=1e-3, warmup_steps=100, decay_steps=CONTINUE_STEPS, final_lr_fraction=0.05)
  return c
