"""8 fake CPU devices for sharding tests, one XLA compilation cache for the whole run,
XLA's cheap compile mode and single-threaded PyTorch; all must be set before JAX and
PyTorch initialise."""
import os
import shutil
import sys
import tempfile

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Most of a tiny test's time is compiling, and the same programs compile again in every
# process: both xdist workers and each script a test launches (the tiny pipeline runs in
# several). A persistent cache, made here in the first process and inherited by the
# workers and scripts (environment variables), compiles each program once per run. The
# run starts empty, so nothing compiled by another checkout is reused.
_MADE_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _MADE_CACHE = tempfile.mkdtemp(prefix="s2jax-tests-xla-cache-")
  os.environ.update(JAX_COMPILATION_CACHE_DIR=_MADE_CACHE,
                    JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                    JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
# The tests' programs are tiny and each runs a few times, so compiling them is most of the
# suite's time: XLA's cheaper compile (no LLVM -O2, no expensive passes) spends less on it
# than the slower programs lose. Inherited by the workers and scripts like the cache above;
# an explicit JAX_DISABLE_MOST_OPTIMIZATIONS=0 keeps full optimisation.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
# PyTorch (the transformers references in test_convert and the Hugging Face checkpoints)
# on one thread: its OpenMP threads spin-wait while the other xdist worker's XLA holds the
# cores, and two threads ran the SmolLM2 greedy reference several times slower than one.
os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", max_examples=60, deadline=None)
settings.load_profile("ci")


@pytest.fixture(scope="session")
def root():
  return ROOT


@pytest.fixture(scope="session")
def tiny_config():
  from s2jax.config import load_config_file
  return lambda: load_config_file(os.path.join(ROOT, "configs", "arith.py:tiny"))


def script_env(devices: int = 1) -> dict:
  """Environment for running a script in a subprocess on `devices` fake CPU devices."""
  e = dict(os.environ)
  e["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  e["JAX_PLATFORMS"] = "cpu"
  e["PYTHONPATH"] = ROOT
  return e


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory):
  """The tiny pipeline (configs/pipeline.py:tiny, seed 0), run in two launches: first SFT
  and the verifier only, then every stage (the first two are skipped). Laid out as an
  ablation workdir (<root>/pipeline/seed0), so the ablation tests build on it."""
  import json
  import subprocess
  from filelock import FileLock
  # Under pytest-xdist every worker has this session fixture: the first one to get the
  # lock runs the pipeline in the directory all workers share, the others read its logs.
  shared = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):  # the run's directory, above the workers' own
    shared = shared.parent
  root = str(shared / "tiny_ablations")
  workdir = os.path.join(root, "pipeline", "seed0")
  out = os.path.join(workdir, "report")  # where the report goes when --out is not given
  cmd = [sys.executable, os.path.join(ROOT, "experiments", "pipeline.py"),
         f"--config={os.path.join(ROOT, 'configs', 'pipeline.py:tiny')}", f"--workdir={workdir}"]
  logs_path = os.path.join(root, "launch_logs.json")
  with FileLock(str(shared / "tiny_ablations.lock")):
    if not os.path.exists(logs_path):
      logs = []
      for extra in (["--config.stages=('sft', 'verifier')"], []):
        p = subprocess.run(cmd + extra, env=script_env(), capture_output=True, text=True,
                           cwd=ROOT)
        assert p.returncode == 0, p.stderr[-3000:]
        logs.append(p.stdout + p.stderr)
      with open(logs_path, "w") as f:
        json.dump(logs, f)
    with open(logs_path) as f:
      logs = json.load(f)
  return {"root": root, "workdir": workdir, "out": out, "logs": logs, "cmd": cmd}


def pytest_unconfigure(config):
  if _MADE_CACHE is not None and not os.environ.get("PYTEST_XDIST_WORKER"):
    shutil.rmtree(_MADE_CACHE, ignore_errors=True)
