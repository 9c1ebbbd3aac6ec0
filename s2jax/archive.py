"""A workdir's outputs kept in the repository, so that the points of an ablation can run
in different sessions, on machines that do not keep their disks, and still report together.

Checkpoints stay where they were trained. Everything else a report reads (configs,
metrics, per-problem verdicts, launch logs) is small: `save(workdir, archive)` copies it
into an archive folder (the project's is results/ablations/runs), and an ablation's
`--archive` flag saves the live workdir into the archive and writes the report from the
archive, so one report pools every session's points.

What a save does to a file the archive already holds:
- launches.jsonl: the union of both logs' lines, so no session's launches (failed ones
  included) are lost. A launch with no end line (other than the saving process's own) is
  closed at save time as "unfinished", charged up to its last heartbeat in the live workdir
  (report.last_alive), since a clone's file times no longer say when it stopped; an end
  line that a later save brings wins over it.
- run_info.json: the archive's copy stays (it names the launch that began the run).
- anything else: the live copy replaces it, and the save's line in <archive>/SAVES.jsonl
  names every replaced file with both hashes.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time

from s2jax import report

SAVES = "SAVES.jsonl"
SKIPPED_DIRS = ("checkpoints", report.HEARTBEATS)  # heartbeats: read live (merge_launches)
MAX_BYTES = 2 << 20  # keeps eval outputs and test splits; leaves out training sets


def _sha(path: str) -> str:
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()[:16]


def archived_files(workdir: str, max_bytes: int = MAX_BYTES) -> tuple[list, list]:
  """(relative paths to keep, [(relative path, bytes)] of files too large to keep); the
  contents of checkpoint and heartbeat folders are neither."""
  keep, large = [], []
  for d, dirs, files in os.walk(workdir):
    dirs[:] = sorted(x for x in dirs if x not in SKIPPED_DIRS)
    for name in sorted(files):
      path = os.path.join(d, name)
      rel = os.path.relpath(path, workdir)
      if name.endswith(".tmp") or os.path.islink(path):
        continue
      size = os.path.getsize(path)
      (large.append((rel, size)) if size > max_bytes else keep.append(rel))
  return keep, large


def _launch_lines(path: str) -> list[dict]:
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def merge_launches(archived: list[dict], live: list[dict], now: float,
                   live_workdir: str = "") -> list[dict]:
  """The union of two launch logs (lines in the archive's order, then the live log's new
  lines); every launch still without an end line gets one: "unfinished", with its seconds
  up to when it was last alive in `live_workdir` (report.last_alive; `now` without one)."""
  seen = {json.dumps(r, sort_keys=True) for r in archived}
  lines = archived + [r for r in live if json.dumps(r, sort_keys=True) not in seen]
  ended = {r["id"] for r in lines if r.get("status") != "started"}
  starts = [report.started_at(r) for r in lines if r.get("status") == "started"]
  bound = report.last_write_bound(live_workdir, now) if live_workdir else None
  for r in list(lines):
    # This process's own launch (the report being written) is running, not unfinished.
    if (r.get("status") == "started" and r["id"] not in ended
        and r.get("pid") != os.getpid()):
      end, basis = ((now, "seconds up to the save") if not live_workdir
                    else report.last_alive(live_workdir, r, starts, bound))
      lines.append({"id": r["id"], "what": r["what"], "status": "unfinished",
                    "error": f"no end line when the workdir was archived; {basis}",
                    "seconds": max(0.0, end - report.started_at(r))})
      ended.add(r["id"])
  return lines


def save(workdir: str, archive: str, max_bytes: int = MAX_BYTES) -> dict:
  """Copies workdir's small files into archive (see the module docstring) and appends
  what it did to <archive>/SAVES.jsonl; returns that record."""
  if not os.path.isdir(workdir):
    raise FileNotFoundError(f"workdir {workdir!r} does not exist; nothing to archive")
  keep, large = archived_files(workdir, max_bytes)
  added, replaced, merged = [], [], []
  now = time.time()
  for rel in keep:
    src, dst = os.path.join(workdir, rel), os.path.join(archive, rel)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if os.path.basename(rel) == report.LAUNCHES:
      before = _launch_lines(dst)
      lines = merge_launches(before, _launch_lines(src), now, os.path.dirname(src))
      if lines != before:
        with open(dst + ".tmp", "w") as f:
          f.writelines(json.dumps(r) + "\n" for r in lines)
        os.replace(dst + ".tmp", dst)
        merged.append(rel)
      continue
    if os.path.exists(dst):
      old, new = _sha(dst), _sha(src)
      if old == new or os.path.basename(rel) == "run_info.json":
        continue
      replaced.append({"path": rel, "archived": old, "live": new})
    else:
      added.append(rel)
    shutil.copy2(src, dst + ".tmp")
    os.replace(dst + ".tmp", dst)
  record = {**report.run_info(), "workdir": os.path.abspath(workdir), "added": added,
            "replaced": replaced, "merged_launches": merged,
            "too_large": [{"path": p, "bytes": b} for p, b in large]}
  os.makedirs(archive, exist_ok=True)
  with open(os.path.join(archive, SAVES), "a") as f:
    f.write(json.dumps(record) + "\n")
  return record
