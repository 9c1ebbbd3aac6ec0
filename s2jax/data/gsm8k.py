"""GSM8K-format JSONL: one {"question", "answer"} object a line.

Generated synthetic splits use the same format plus a `meta` object that lets the exact
step checker rebuild the problem.
"""
from __future__ import annotations

import json
import os
from typing import Iterable, Optional

from s2jax.tasks.arith import parse_final_answer

REQUIRED_KEYS = ("question", "answer")


def read_jsonl(path: str, required: Iterable[str] = REQUIRED_KEYS) -> list[dict]:
  """Every record of a GSM8K-format file; a clear error for any bad line, none skipped."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"data file not found: {path}")
  records = []
  with open(path, encoding="utf-8") as f:
    for lineno, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        rec = json.loads(line)
      except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
      if not isinstance(rec, dict):
        raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(rec).__name__}")
      missing = [k for k in required if k not in rec]
      if missing:
        raise ValueError(f"{path}:{lineno}: missing key(s) {missing}")
      for k in required:
        if not isinstance(rec[k], str):
          raise ValueError(f"{path}:{lineno}: {k!r} must be a string")
      records.append(rec)
  if not records:
    raise ValueError(f"{path}: no records (the file is empty)")
  return records


def write_jsonl(path: str, records: Iterable[dict]) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    for r in records:
      f.write(json.dumps(r) + "\n")
  os.replace(tmp, path)


def reference_answer(record: dict) -> Optional[float]:
  """The gold final answer of a record (`#### N` at the end of its answer field)."""
  return parse_final_answer(record["answer"])
