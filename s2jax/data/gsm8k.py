"""GSM8K: one dataset interface over two sources, answer extraction and grading.

Records are {"question", "answer"} objects; the answer is one reasoning step a line, the
calculator annotations `<<expr=value>>` inside them (their arithmetic check is the weak,
real-data step label), and a final `#### N` line. Generated synthetic splits use the same
format plus a `meta` object that lets the exact step checker rebuild the problem.

Sources:
- "jsonl": the official release's train.jsonl / test.jsonl; the package ships them
  (s2jax/assets/gsm8k, with their MIT licence and source), so the default needs nothing
  beside the repository.
- "tfds": TensorFlow Datasets' `gsm8k`, read from a prepared TFDS data directory with no
  TensorFlow (s2jax.data.gsm8k_tfds, which also builds one from the JSONL; nothing is
  downloaded here).
"""
from __future__ import annotations

import math
import os
import re
from fractions import Fraction
from typing import Iterable, Optional

from s2jax.data import jsonl
from s2jax.tasks.arith import parse_final_answer

REQUIRED_KEYS = ("question", "answer")
SPLITS = ("train", "test")
# The release as shipped in the package (package data, so an installed package has it too).
DEFAULT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "assets", "gsm8k")


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


def load(split: str, *, source: str = "jsonl", data_dir: str = "",
         limit: int = 0) -> list[dict]:
  """The records of a GSM8K split ("train" or "test") from either source, in the
  release's order; `limit` > 0 keeps the first `limit`."""
  if split not in SPLITS:
    raise ValueError(f"GSM8K split {split!r} does not exist; use one of {SPLITS}")
  if source == "jsonl":
    records = read_jsonl(os.path.join(data_dir or DEFAULT_DIR, f"{split}.jsonl"))
  elif source == "tfds":
    records = _load_tfds(split, data_dir)
  else:
    raise ValueError(f"GSM8K source {source!r} is unknown; use 'jsonl' or 'tfds'")
  return records[:limit] if limit > 0 else records


def _load_tfds(split: str, data_dir: str) -> list[dict]:
  if not data_dir:
    raise ValueError("the 'tfds' GSM8K source needs data_dir: a TFDS data directory holding "
                     "a prepared gsm8k (s2jax.data.gsm8k_tfds.prepare builds one)")
  from s2jax.data import gsm8k_tfds
  return gsm8k_tfds.read(split, data_dir, REQUIRED_KEYS)


def reference_answer(record: dict) -> Optional[float]:
  """The gold final answer of a record (`#### N` at the end of its answer field)."""
  return parse_final_answer(record["answer"])


# ----------------------------------------------------------------- answer extraction

# A number as models write it: sign, thousands separators, decimals, a fraction.
_NUM = r"-?\$?\s*-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?"
_NUM_RE = re.compile(_NUM)
_HASHES = re.compile(r"####\s*(" + _NUM + ")")
_BOXED = re.compile(r"\\boxed\s*\{\s*(?:\\text\{)?\s*(" + _NUM + ")")
_ANSWER_IS = re.compile(r"(?:final answer|the answer|answer)\s*(?:is|:|=)?\s*[:=]?\s*"
                        r"(?:\*\*)?\s*(" + _NUM + ")", re.IGNORECASE)


def to_number(text: str) -> Optional[float]:
  """'$1,234.50' → 1234.5, '-3/4' → -0.75, ' 12 ' → 12; None if it is not a number."""
  t = text.replace(",", "").replace("$", "").replace(" ", "")
  if t.count("-") > 1 or ("-" in t and not t.startswith("-")):
    return None
  try:
    if "/" in t:
      num, den = t.split("/")
      if float(den) == 0:
        return None
      v = float(Fraction(num) / Fraction(den))
    else:
      v = float(t)
  except (ValueError, ZeroDivisionError):
    return None
  return v if math.isfinite(v) else None


def extract_answer(output: str) -> Optional[float]:
  """The final numeric answer of a model's output, by the first rule that applies:
  the first `#### N`; the last `\\boxed{N}`; the last "the answer is N"; the last number
  in the text. Commas, currency, units and trailing text around the number are ignored."""
  if not isinstance(output, str):
    return None
  m = _HASHES.search(output)
  if m:
    return to_number(m.group(1))
  for pattern in (_BOXED, _ANSWER_IS):
    hits = pattern.findall(output)
    if hits:
      return to_number(hits[-1])
  hits = _NUM_RE.findall(output)
  return to_number(hits[-1]) if hits else None


def answers_match(predicted: Optional[float], gold: Optional[float]) -> bool:
  if predicted is None or gold is None:
    return False
  return abs(predicted - gold) <= 1e-6 * max(1.0, abs(gold))


def is_correct(output: str, record: dict) -> bool:
  return answers_match(extract_answer(output), reference_answer(record))


# ----------------------------------------------------------------- few-shot exemplars


def fewshot_exemplars(train_records: list, n: int) -> list[tuple[str, str]]:
  """The first `n` train problems, in the release's order: a fixed, documented choice,
  so every run and every paper comparison sees the same prompt."""
  if n > len(train_records):
    raise ValueError(f"asked for {n} few-shot exemplars, the train split has "
                     f"{len(train_records)} problems")
  return [(r["question"], r["answer"]) for r in train_records[:n]]
