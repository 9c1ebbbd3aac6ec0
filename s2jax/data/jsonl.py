"""JSON-lines files: every bad line is an error that names the file and line."""
from __future__ import annotations

import json
import os
from typing import Callable, Iterable


def read_jsonl(path: str, check: Callable[[object, str], dict], what: str = "data") -> list:
  """All records of a JSONL file, each passed through `check(record, "path:line")`,
  which returns the record or raises ValueError. Blank lines are skipped; an empty file,
  a missing file or invalid JSON is an error."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{what} file not found: {path}")
  records = []
  with open(path, encoding="utf-8") as f:
    for lineno, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        rec = json.loads(line)
      except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
      records.append(check(rec, f"{path}:{lineno}"))
  if not records:
    raise ValueError(f"{path}: no records (the file is empty)")
  return records


def write_jsonl(path: str, records: Iterable[dict]) -> None:
  """Atomic write: readers never see a half-written file."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    for r in records:
      f.write(json.dumps(r) + "\n")
  os.replace(tmp, path)
