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


def read_metrics(path: str) -> list[dict]:
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def progress(total: int, initial: int = 0, desc: str = "") -> tqdm:
  return tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True,
              disable=jax.process_index() != 0, mininterval=1.0)
