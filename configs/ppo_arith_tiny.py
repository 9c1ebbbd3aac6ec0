"""Seconds-long version of configs/ppo_arith.py, for tests and smoke runs."""
import importlib.util
import os


def get_config(arg: str = ""):
  spec = importlib.util.spec_from_file_location(
      "ppo_default", os.path.join(os.path.dirname(os.path.abspath(__file__)), "ppo_arith.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config()
  c.rl.update(epochs=1, minibatches=2)
  c.rollout.update(prompts=4, train_problems=16, max_new_tokens=32, max_cache_len=448)
  c.recovery.update(fraction=0.5, eval_problems=2)
  c.hacking.update(window=1)
  c.train.update(iterations=2, checkpoint_every=1)
  c.eval.update(every=2, num_problems=4, batch_size=4, max_new_tokens=32)
  c.score_batch_size = 8
  return c
