"""Seconds-long version of configs/pipeline.py (every stage's *_tiny config), for tests."""
import os

from s2jax.config import load_config_file

_HERE = os.path.dirname(os.path.abspath(__file__))


def get_config(arg: str = ""):
  c = load_config_file(os.path.join(_HERE, "pipeline.py"))
  for stage, name in (("sft", "arith_tiny.py"), ("verifier", "verifier_arith_tiny.py"),
                      ("distill", "distill_arith_tiny.py"), ("ppo", "ppo_arith_tiny.py"),
                      ("search", "search_arith_tiny.py")):
    c[stage] = load_config_file(os.path.join(_HERE, name))
  c.distill.rounds = 1
  c.ppo.recovery.fraction = 0.0
  c.search.beam.budgets = ()
  return c
