"""Two processes on loopback with gloo CPU collectives train like one process.

Each process holds 2 CPU devices and loads only its half of every global batch; orbax
writes the checkpoints collectively. Losses must equal a single-process run on the same
global batches.
"""
import os
import socket
import subprocess

import pytest

from s2jax.metrics import read_metrics
from tests.test_experiments import env, sft_cmd

STEPS = ["--config.train.steps=4", "--config.train.log_every=1",
         "--config.train.checkpoint_every=2", "--config.eval.enabled=False"]


def free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def losses(workdir):
  return {m["step"]: m["loss"] for m in read_metrics(os.path.join(workdir, "metrics.jsonl"))
          if "loss" in m}


def test_two_processes_match_one(tmp_path, root):
  single = str(tmp_path / "single")
  subprocess.run(sft_cmd(root, single, *STEPS), env=env(1), check=True, capture_output=True)

  multi = str(tmp_path / "multi")
  port = free_port()
  procs = []
  for pid in range(2):
    cmd = sft_cmd(root, multi, *STEPS, "--config.distributed.enabled=True",
                  f"--config.distributed.coordinator_address=127.0.0.1:{port}",
                  "--config.distributed.num_processes=2",
                  f"--config.distributed.process_id={pid}")
    procs.append(subprocess.Popen(cmd, env=env(2), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True))
  outs = []
  for p in procs:
    try:
      outs.append(p.communicate(timeout=600)[0])
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      pytest.fail("multi-process run timed out")
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-3000:]
  a, b = losses(single), losses(multi)
  assert sorted(a) == sorted(b) == [1, 2, 3, 4]
  for s in a:
    assert abs(a[s] - b[s]) <= 1e-5 * abs(a[s]), (s, a[s], b[s])
  start = [m for m in read_metrics(os.path.join(multi, "metrics.jsonl")) if m.get("event") == "start"]
  assert start[0]["processes"] == 2 and start[0]["devices"] == 4
  ck = os.path.join(multi, "checkpoints")
  assert sorted(int(d) for d in os.listdir(ck) if d.isdigit()) == [2, 4]
