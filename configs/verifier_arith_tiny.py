"""Seconds-long version of configs/verifier_arith.py, for tests and smoke runs (point
policy_workdir at an arith_tiny SFT workdir)."""
import importlib.util
import os


def get_config(arg: str = ""):
  spec = importlib.util.spec_from_file_location(
      "verifier_default",
      os.path.join(os.path.dirname(os.path.abspath(__file__)), "verifier_arith.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config()
  c.samples.update(train_problems=8, per_problem=2, heldout_problems=4, heldout_per_problem=2,
                   batch_size=16, max_new_tokens=48, max_cache_len=448)
  c.labels.update(mc_k=2, mc_rollouts=2, mc_max_new_tokens=32)
  c.optim.update(warmup_steps=1, decay_steps=4)
  c.train.update(steps=4, batch_size=8, log_every=2, checkpoint_every=2)
  c.eval.update(score_batch_size=16)
  return c
