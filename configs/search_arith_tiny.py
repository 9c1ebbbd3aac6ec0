"""Seconds-long version of configs/search_arith.py, for tests."""
import importlib.util
import os


def get_config(arg: str = ""):
  spec = importlib.util.spec_from_file_location(
      "search_default", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                     "search_arith.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config()
  c.num_problems = 3
  c.ns = (1, 2, 4)
  c.sampling.update(batch_size=16, max_new_tokens=48, max_cache_len=448)
  c.beam.update(budgets=(4,), max_depth=4, max_step_tokens=24, batch_size=16)
  c.score_batch_size = 16
  return c
