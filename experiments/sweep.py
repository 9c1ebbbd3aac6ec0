"""Run one job per point of a sweep defined in a config file (big_vision style).

  python experiments/sweep.py --config=configs/verifier_arith.py --sweep=label_sources \
      --script=experiments/train_verifier.py --workdir_root=workdirs/labels \
      -- --config.policy_workdir=workdirs/sft

The config file's `<sweep>()` returns [(name, {dotted.key: value})]; each point runs
`python <script> --config=<config> --workdir=<root>/<name> --config.key=value ...` plus the
arguments after `--`, one after another here (or one job each on a cluster, from the
printed commands with --dry_run). A point whose job finished (DONE or eval/summary.json in
its workdir) is skipped,
so an interrupted sweep resumes.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys


from s2jax.report import is_done


def sweep_points(config_path: str, fn: str) -> list:
  spec = importlib.util.spec_from_file_location("_sweep_config", config_path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, fn):
    sys.exit(f"error: {config_path} defines no sweep function {fn!r}")
  return getattr(module, fn)()


def main():
  argv = sys.argv[1:]
  extra = argv[argv.index("--") + 1:] if "--" in argv else []
  argv = argv[:argv.index("--")] if "--" in argv else argv
  ap = argparse.ArgumentParser()
  ap.add_argument("--config", required=True)
  ap.add_argument("--sweep", required=True)
  ap.add_argument("--script", required=True)
  ap.add_argument("--workdir_root", required=True)
  ap.add_argument("--dry_run", action="store_true")
  args = ap.parse_args(argv)
  for name, overrides in sweep_points(args.config, args.sweep):
    workdir = os.path.join(args.workdir_root, name)
    cmd = [sys.executable, args.script, f"--config={args.config}", f"--workdir={workdir}"]
    cmd += [f"--config.{k}={v}" for k, v in overrides.items()] + extra
    print(" ".join(cmd), flush=True)
    if args.dry_run or is_done(workdir):
      continue
    subprocess.run(cmd, check=True)


if __name__ == "__main__":
  main()
