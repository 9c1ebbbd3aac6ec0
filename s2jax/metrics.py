"""Metrics as JSONL in the workdir (process 0 writes), plus progress bars."""
from __future__ import annotations

import json
import os
import time

import jax
from tqdm.auto import tqdm


class MetricWriter:
  def __init__(self, workdir: str, name: str = "metrics.jsonl"):
    self.path = os.path.join(workdir, name)
    self.active = jax.process_index() == 0
    if self.active:
      os.makedirs(workdir, exist_ok=True)

  def write(self, step: int, **metrics) -> None:
    if not self.active:
      return
    rec = {"step": int(step), "time": time.time()}
    for k, v in metrics.items():
      if hasattr(v, "item") and getattr(v, "ndim", 0) == 0:  # numpy / jax scalars
        v = v.item()
      rec[k] = v

    with open(self.path, "a") as f:
      f.write(json.dumps(rec) + "\n")


def latest_per_step(metrics: list[dict]) -> list[dict]:
  """One record per step, the last one written: a resumed run logs again the steps after
  its last checkpoint, and those repeats replace the first launch's records."""
  by_step = {}
  for m in metrics:
    by_step[m["step"]] = m
  return [by_step[s] for s in sorted(by_step)]


def read_metrics(path: str) -> list[dict]:
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def progress(total: int, initial: int = 0, desc: str = "") -> tqdm:
  return tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True,
              disable=jax.process_index() != 0, mininterval=1.0)


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
  """Wilson score interval of a binomial proportion (scipy's); unlike the normal
  approximation it stays inside [0, 1] and is honest near 0, where small models on GSM8K
  live."""
  if n <= 0:
    raise ValueError("wilson_interval: n must be positive")
  from scipy.stats import binomtest
  ci = binomtest(int(successes), int(n)).proportion_ci(confidence_level=level, method="wilson")
  return float(ci.low), float(ci.high)
