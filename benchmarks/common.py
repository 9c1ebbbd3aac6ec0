"""Shared benchmark helpers: timing medians and the device's matmul roofline."""
from __future__ import annotations

import os
import subprocess
import sys
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


def sft_log_lines(checkout: str, config: str, steps: int, log_every: int, workdir: str) -> list:
  """Run `experiments/sft.py` of `checkout` (evaluation off) and return its training log
  lines after the first (which holds the compile)."""
  from s2jax.metrics import read_metrics
  env = dict(os.environ, PYTHONPATH=os.path.abspath(checkout), JAX_PLATFORMS="cpu")
  cmd = [sys.executable, os.path.join(checkout, "experiments", "sft.py"),
         f"--config={os.path.join(checkout, config)}", f"--workdir={workdir}",
         f"--config.train.steps={steps}", f"--config.train.log_every={log_every}",
         f"--config.train.checkpoint_every={steps}", "--config.eval.enabled=False"]
  p = subprocess.run(cmd, env=env, capture_output=True, text=True)
  if p.returncode:
    raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
  lines = [m for m in read_metrics(os.path.join(workdir, "metrics.jsonl"))
           if "targets_per_s" in m]
  return lines[1:]
