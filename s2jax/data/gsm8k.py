"""GSM8K-format JSONL: one {"question", "answer"} object a line.

Generated synthetic splits use the same format plus a `meta` object that lets the exact
step checker rebuild the problem.
"""
from __future__ import annotations

from typing import Iterable, Optional

from s2jax.data import jsonl
from s2jax.tasks.arith import parse_final_answer

REQUIRED_KEYS = ("question", "answer")


def read_jsonl(path: str, required: Iterable[str] = REQUIRED_KEYS) -> list[dict]:
  """Every record of a GSM8K-format file; a clear error for any bad line, none skipped."""
  required = tuple(required)

  def check(rec, where):
    if not isinstance(rec, dict):
      raise ValueError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    missing = [k for k in required if k not in rec]
    if missing:
      raise ValueError(f"{where}: missing key(s) {missing}")
    for k in required:
      if not isinstance(rec[k], str):
        raise ValueError(f"{where}: {k!r} must be a string")
    return rec
  return jsonl.read_jsonl(path, check)


write_jsonl = jsonl.write_jsonl


def reference_answer(record: dict) -> Optional[float]:
  """The gold final answer of a record (`#### N` at the end of its answer field)."""
  return parse_final_answer(record["answer"])
