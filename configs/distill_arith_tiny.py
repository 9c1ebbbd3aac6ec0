"""Seconds-long version of configs/distill_arith.py, for tests and smoke runs."""
import importlib.util
import os


def get_config(arg: str = ""):
  spec = importlib.util.spec_from_file_location(
      "distill_default",
      os.path.join(os.path.dirname(os.path.abspath(__file__)), "distill_arith.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config()
  c.rounds = 2
  c.samples.update(problems=4, per_problem=2, batch_size=8, max_new_tokens=32,
                   max_cache_len=448)
  c.optim.update(warmup_steps=1, decay_steps=3)
  c.train.update(steps=3, batch_size=4, log_every=1, checkpoint_every=3)
  c.eval.update(num_problems=4, batch_size=4, max_new_tokens=32, max_cache_len=448)
  c.score_batch_size = 8
  return c
