"""Shared benchmark helpers: timing medians and the device's matmul roofline."""
from __future__ import annotations

import os
import time


import jax
import jax.numpy as jnp
import numpy as np


def median_time(fn, repeats: int = 5, warmup: int = 1) -> float:
  """Median wall time of fn() (which must block until its work is done)."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return float(np.median(times))


def matmul_flops_per_s(n: int = 2048, dtype=jnp.float32, repeats: int = 7) -> float:
  """FLOP/s of one large square matmul on the default device (the roofline we compare to)."""
  a = jnp.ones((n, n), dtype)
  b = jnp.ones((n, n), dtype)
  f = jax.jit(lambda a, b: a @ b)
  dt = median_time(lambda: f(a, b).block_until_ready(), repeats=repeats, warmup=2)
  return 2 * n ** 3 / dt


def device_name() -> str:
  d = jax.devices()[0]
  return f"{d.platform}:{getattr(d, 'device_kind', '')} x{jax.device_count()}"


def write_result(path, result: dict) -> None:
  """JSON with the exact command and git commit that produced it."""
  if not path:
    return
  import json
  from s2jax.report import run_info
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    json.dump({"run_info": run_info(), "result": result}, f, indent=2)
