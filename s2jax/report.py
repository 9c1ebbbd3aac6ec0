"""Machine-written result reports: markdown + JSON (+ plots), each with its command,
config and git commit."""
from __future__ import annotations

import calendar
import contextlib
import functools
import json
import os
import subprocess
import sys
import time
import uuid
from typing import Callable


def git_commit(path: str = ".") -> str:
  try:
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True,
                         check=True).stdout.strip()
    # Dirty means the code differs from the commit. Changes under results/ (the reports
    # this very batch of report scripts is rewriting) change no computation.
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                            ":/", ":(exclude,top)results"], cwd=path,
                           capture_output=True, text=True).stdout.strip()
    return out + ("-dirty" if dirty else "")
  except (OSError, subprocess.CalledProcessError):
    return "unknown"


@functools.lru_cache(maxsize=None)
def process_commit() -> str:
  """The commit of the code this process runs: read once, when it first asks, so that a
  commit made while a long job runs is not taken for the one it started from. It is the
  checkout the package lives in or, for an installed package, the working directory's."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  commit = git_commit(root)
  return git_commit(os.getcwd()) if commit == "unknown" else commit


def run_info() -> dict:
  """What produced a run: written into the workdir when the run starts."""
  return {"command": " ".join(["python"] + sys.argv), "commit": process_commit(),
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


LAUNCHES = "launches.jsonl"
# A running launch rewrites <workdir>/heartbeats/<id> with the time every HEARTBEAT_S
# seconds, so a launch killed outright (no end line) is charged until it was last alive.
HEARTBEATS = "heartbeats"
HEARTBEAT_S = 30.0


def _beat(path: str) -> None:
  with open(path + ".tmp", "w") as f:
    f.write(f"{time.time():.3f}\n")
  os.replace(path + ".tmp", path)


@contextlib.contextmanager
def launch(workdir: str, what: str):
  """Records one launch of `what` in <workdir>/launches.jsonl: a "started" line when it
  begins and an "ok" / "failed" / "interrupted" line with its wall time when it ends, so
  every launch is counted, failed ones included. A launch killed outright leaves only its
  "started" line and its last heartbeat (`last_alive`)."""
  import threading
  import jax
  info = {**run_info(), "what": what, "pid": os.getpid(), "id": uuid.uuid4().hex}
  t0 = time.time()
  lead = jax.process_index() == 0
  beat_path = os.path.join(workdir, HEARTBEATS, info["id"])
  stop = threading.Event()

  def append(record):
    if lead:
      os.makedirs(workdir, exist_ok=True)
      with open(os.path.join(workdir, LAUNCHES), "a") as f:
        f.write(json.dumps(record) + "\n")

  def beat():
    while not stop.wait(HEARTBEAT_S):
      with contextlib.suppress(OSError):
        _beat(beat_path)
  append({**info, "status": "started"})
  if lead:
    os.makedirs(os.path.dirname(beat_path), exist_ok=True)
    _beat(beat_path)
    beating = threading.Thread(target=beat, daemon=True, name=f"heartbeat {what}")
    beating.start()
  status, error = "ok", None
  try:
    yield
  except KeyboardInterrupt:
    status, error = "interrupted", "KeyboardInterrupt"
    raise
  except BaseException as e:  # noqa: B902 - record any failure, then let it propagate
    status, error = "failed", f"{type(e).__name__}: {e}"[:500]
    raise
  finally:
    stop.set()
    if lead:
      beating.join()  # no beat after the file is removed
    append({"id": info["id"], "what": what, "status": status, "error": error,
            "seconds": time.time() - t0})
    with contextlib.suppress(OSError):
      os.remove(beat_path)


def started_at(record: dict) -> float:
  return float(calendar.timegm(time.strptime(record["started"], "%Y-%m-%dT%H:%M:%SZ")))


def last_write_bound(workdir: str, now: float) -> Callable[[], float]:
  """The workdir's last write or `now`, whichever is first, walked once on first call: the
  bound `last_alive` needs only for launches without a heartbeat."""
  return functools.cache(lambda: min(now, max(
      (os.path.getmtime(os.path.join(d, f)) for d, _, fs in os.walk(workdir) for f in fs),
      default=now)))


def last_alive(workdir: str, record: dict, starts, bound: Callable[[], float]
               ) -> tuple[float, str]:
  """(time, basis) a launch with no end line was last known to run: its last heartbeat;
  for a launch from before heartbeats, an upper bound: the next launch's start in the same
  log or `bound()` (last_write_bound), whichever is first."""
  path = os.path.join(workdir, HEARTBEATS, record["id"])
  if os.path.exists(path):
    with open(path) as f:
      return float(f.read()), "its last heartbeat"
  start = started_at(record)
  return (min([bound()] + [s for s in starts if s > start]),
          "no heartbeat: at most until the next launch or the last write")


def read_launches(workdir: str) -> list[dict]:
  """One dict per launch: its "started" line merged with its end line; a launch with no
  end line has status "killed" and seconds up to when it was last alive (`last_alive`)."""
  path = os.path.join(workdir, LAUNCHES)
  if not os.path.exists(path):
    return []
  by_id = {}
  with open(path) as f:
    for line in f:
      r = json.loads(line)
      by_id.setdefault(r["id"], {}).update(r)
  starts = [started_at(r) for r in by_id.values()]
  now = time.time()
  bound = last_write_bound(workdir, now)
  out = []
  for r, start in zip(by_id.values(), starts):
    if r["status"] == "started" and r.get("pid") == os.getpid():  # this very launch
      r = {**r, "status": "running", "seconds": now - start}
    elif r["status"] == "started":
      end, basis = last_alive(workdir, r, starts, bound)
      r = {**r, "status": "killed", "error": basis, "seconds": max(0.0, end - start)}
    out.append(r)
  return out


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


def comparison_cells(c: dict) -> list:
  """The accuracy and difference cells of a stats.compare / compare_pooled row."""
  return [f"{c['a']:.3f} → {c['b']:.3f}",
          f"{c['difference']:+.3f} [{c['ci'][0]:+.3f}, {c['ci'][1]:+.3f}]"]


POOLED_COLUMNS = ["accuracy", "difference [95% CI]", "detectable", "verdict"]


def pooled_cells(c: dict) -> list:
  """The POOLED_COLUMNS cells of a stats.compare_pooled row: accuracies, difference with
  its interval, the smallest detectable effect and the verdict."""
  return [*comparison_cells(c), f"±{c['mde']:.3f}", c["verdict"]]


def launches_table(launches: list, where: bool = False) -> str:
  """Markdown table of launches (read_launches), status with its error, wall time,
  commit (marked dirty) and command; `where` adds each launch's "where" column."""
  head = (["where"] if where else []) + ["what", "status", "started", "seconds", "commit",
                                         "command"]
  rows = [([r.get("where", "")] if where else [])
          + [r["what"], r["status"] + (f" ({r['error']})" if r.get("error") else ""),
             r["started"], f"{r['seconds']:.0f}", f"`{r['commit'][:12]}`"
             + (" dirty" if r["commit"].endswith("-dirty") else ""), f"`{r['command']}`"]
          for r in launches]
  return markdown_table(head, rows)
