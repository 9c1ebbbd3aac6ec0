"""Named splits of the synthetic task: in-distribution and domain-shifted."""
from __future__ import annotations

import zlib

from s2jax.tasks.arith import Problem, TaskConfig, generate_split


def task_config(base: dict, overrides: dict | None = None) -> TaskConfig:
  d = {k: v for k, v in base.items() if k != "name"}  # the registry's key, not a knob
  for k, v in (overrides or {}).items():
    if k not in d:
      raise ValueError(f"split override: unknown task key {k!r}")
    d[k] = v
  return TaskConfig.from_dict(d)


def split_seed(seed: int, name: str) -> int:
  return (seed * 1_000_003 + zlib.crc32(name.encode())) % (2 ** 31)


def build_split(config, name: str, n: int) -> list[Problem]:
  """Problems of one named split: `train`, `test` (in-distribution) or a key of
  config.splits (shifted: its entries override config.task)."""
  base = config.task.to_dict()
  if name in ("train", "test"):
    cfg = task_config(base)
  elif name in config.splits:
    cfg = task_config(base, config.splits[name].to_dict())
  else:
    raise ValueError(f"unknown split {name!r}; known: train, test, {', '.join(config.splits)}")
  return generate_split(cfg, n, split_seed(config.seed, name))


def eval_split_names(config) -> list[str]:
  return ["test"] + list(config.splits.keys())
