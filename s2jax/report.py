"""Machine-written result reports: markdown + JSON (+ plots), each with its command,
config and git commit."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def git_commit(path: str = ".") -> str:
  try:
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True,
                         check=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=path,
                           capture_output=True, text=True).stdout.strip()
    return out + ("-dirty" if dirty else "")
  except (OSError, subprocess.CalledProcessError):
    return "unknown"


def run_info() -> dict:
  """What produced a run: written into the workdir when the run starts. The commit is the
  checkout the package lives in or, for an installed package, the working directory's."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  commit = git_commit(root)
  if commit == "unknown":
    commit = git_commit(os.getcwd())
  return {"command": " ".join(["python"] + sys.argv), "commit": commit,
          "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def write_run_info(workdir: str) -> dict:
  """<workdir>/run_info.json, written by the first launch only (the launch that defines
  the run; a re-run resumes it). Returns what the file holds."""
  import jax
  path = os.path.join(workdir, "run_info.json")
  if os.path.exists(path):
    with open(path) as f:
      return json.load(f)
  info = run_info()
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    with open(path, "w") as f:
      json.dump(info, f, indent=2)
  return info


def mark_done(workdir: str) -> None:
  """`<workdir>/DONE`: the job finished (sweeps skip such points)."""
  import jax
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "DONE"), "w") as f:
      f.write(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))


def is_done(workdir: str) -> bool:
  return (os.path.exists(os.path.join(workdir, "DONE"))
          or os.path.exists(os.path.join(workdir, "eval", "summary.json")))


def markdown_table(header: list, rows: list) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
  return "\n".join(lines)
