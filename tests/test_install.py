"""A non-editable install (`pip install .`, a built wheel) into a fresh virtual environment
runs the tiny pipeline and a tiny ablation from a directory outside the repository, with
the config files passed by path: the library needs neither the scripts' directory nor the
repository on the path.

The environment borrows this one's dependencies (jax, flax, ...) through a path file so
that nothing is downloaded; a path file only adds directories, it does not run their own
.pth files, so the editable s2jax of this environment stays out of sight.
"""
import os
import shutil
import site
import subprocess
import sys
import sysconfig

from tests.conftest import ROOT


def _env():
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  env.update(XLA_FLAGS="--xla_force_host_platform_device_count=1", JAX_PLATFORMS="cpu")
  return env


def _run(cmd, cwd):
  p = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True)
  assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-3000:])
  return p.stdout


def test_installed_package_runs_the_pipeline_and_an_ablation_outside_the_repo(tmp_path):
  venv = tmp_path / "venv"
  subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
  python = str(venv / "bin" / "python")
  purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                 str(tmp_path)).strip()
  here = site.getsitepackages() + [sysconfig.get_paths()["purelib"]]
  with open(os.path.join(purelib, "_borrowed_dependencies.pth"), "w") as f:
    f.write("\n".join(dict.fromkeys(here)) + "\n")
  # Non-editable: a wheel is built from the repository and unpacked into the environment.
  _run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
        "--target", purelib, ROOT], str(tmp_path))

  outside = tmp_path / "outside"
  shutil.copytree(os.path.join(ROOT, "configs"), outside / "configs")
  shutil.copytree(os.path.join(ROOT, "experiments"), outside / "experiments")
  where = _run([python, "-c", "import s2jax, importlib.util; print(s2jax.__file__); "
                "print(importlib.util.find_spec('experiments'))"], str(outside / "configs"))
  assert where.splitlines()[0].startswith(purelib), where
  assert where.splitlines()[1] == "None", where  # the scripts are not importable there

  configs, scripts = outside / "configs", outside / "experiments"
  root = tmp_path / "runs"
  _run([python, str(scripts / "pipeline.py"), f"--config={configs / 'pipeline.py'}:tiny",
        f"--workdir={root / 'pipeline' / 'seed0'}", f"--out={tmp_path / 'report'}"],
       str(tmp_path))
  assert (tmp_path / "report" / "REPORT.md").exists()
  out = tmp_path / "ablation" / "domain_shift"
  log = _run([python, str(scripts / "ablation.py"),
              f"--config={configs / 'ablations' / 'domain_shift.py'}:tiny", f"--workdir={root}",
              f"--out={out}"], str(tmp_path))
  # Every point ran, on the pipeline run above (no stage was trained again).
  assert [line for line in log.splitlines() if line.startswith("== ablation point")] == [
      "== ablation point seed0/sft", "== ablation point seed0/distill",
      "== ablation point seed0/ppo"]
  assert "== pipeline stage" not in log
  import json
  result = json.load(open(str(out) + ".json"))
  assert set(result["curves"]["steps"]) >= {"sft", "distill", "ppo"}, result["curves"].keys()
