"""Step-label datasets in TRL's stepwise format, and PRM batches built from them.

One JSON object a line: {"prompt": str, "completions": [step, ...], "labels": [bool, ...]}
(the format of TRL's PRMTrainer, which PRM800K- and Math-Shepherd-style data use), so such
data trains the PRM unchanged.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from s2jax.data import jsonl, packing
from s2jax.data.batches import encode_example
from s2jax.data.steps import encode_with_steps, pad_positions


def validate_record(rec, where: str) -> dict:
  if not isinstance(rec, dict):
    raise ValueError(f"{where}: expected a JSON object")
  for key, kind in (("prompt", str), ("completions", list), ("labels", list)):
    if not isinstance(rec.get(key), kind):
      raise ValueError(f"{where}: {key!r} must be a {kind.__name__}")
  if len(rec["completions"]) != len(rec["labels"]):
    raise ValueError(f"{where}: {len(rec['completions'])} completions but "
                     f"{len(rec['labels'])} labels")
  if not rec["completions"]:
    raise ValueError(f"{where}: no steps")
  for i, (s, l) in enumerate(zip(rec["completions"], rec["labels"])):
    if not isinstance(s, str) or "\n" in s:
      raise ValueError(f"{where}: step {i} must be a one-line string")
    if not isinstance(l, (bool, int, float)) or not 0 <= float(l) <= 1:
      raise ValueError(f"{where}: label {i} must be a boolean (or a soft label in [0, 1])")
  return rec


def read_stepwise(path: str) -> list[dict]:
  return jsonl.read_jsonl(path, validate_record, what="step-label")


def write_stepwise(path: str, records: Iterable[dict]) -> None:
  def normalised():
    for i, r in enumerate(records):
      validate_record(r, f"record {i}")
      yield {"prompt": r["prompt"], "completions": list(r["completions"]),
             "labels": [float(x) if isinstance(x, float) else bool(x) for x in r["labels"]]}
  jsonl.write_jsonl(path, normalised())


def prm_batch(tokenizer, records: Sequence[dict], length: int, max_steps: int) -> dict:
  """Right-padded PRM batch: each step's label sits on its end-of-step token. Records
  without "labels" (for scoring) get zeros."""
  b = len(records)
  tokens = np.full((b, length), tokenizer.pad_id, np.int32)
  mask = np.zeros((b, length), bool)
  positions, labels = [], np.zeros((b, max_steps), np.float32)
  for i, r in enumerate(records):
    seq, ends = encode_with_steps(tokenizer, r["prompt"], r["completions"])
    if len(seq) > length:
      raise ValueError(f"record {i}: {len(seq)} tokens exceed the batch length {length}")
    tokens[i, :len(seq)] = seq
    mask[i, :len(seq)] = True
    positions.append(ends)
    if len(ends) > max_steps:
      raise ValueError(f"record {i}: {len(ends)} steps exceed the batch's {max_steps} slots")
    labels[i, :len(ends)] = [float(x) for x in r.get("labels", [0.0] * len(ends))]
  step_pos, step_valid = pad_positions(positions, max_steps)
  out = {"tokens": tokens, "mask": mask, "step_pos": step_pos, "step_labels": labels,
         "step_valid": step_valid}
  if any("group" in r for r in records):  # for the within-problem ranking loss
    out["group"] = np.asarray([r.get("group", -1) for r in records], np.int32)
    out["outcome"] = np.asarray([float(r.get("outcome", 0.0)) for r in records], np.float32)
  return out


def prm_packed_batch(tokenizer, records: Sequence[dict], width: int, max_steps: int,
                     rows_multiple: int = 1) -> dict:
  """prm_batch's records packed into rows of `width` (s2jax.data.packing), with
  `positions` that restart at each record and `segments` that keep records apart. A row's
  step slots hold the steps of all its records, in slots rounded up to `max_steps`: the
  same labelled positions, hence the same summed loss, on fewer rows."""
  encoded = [encode_with_steps(tokenizer, r["prompt"], r["completions"]) for r in records]
  for i, (_, ends) in enumerate(encoded):
    if len(ends) > max_steps:
      raise ValueError(f"record {i}: {len(ends)} steps exceed the batch's {max_steps} slots")
  packed = packing.pack([seq for seq, _ in encoded], width, tokenizer.pad_id, rows_multiple)
  rows = len(packed.tokens)
  positions = [[] for _ in range(rows)]
  labels = [[] for _ in range(rows)]
  for i, (r, (_, ends)) in enumerate(zip(records, encoded)):
    positions[packed.row[i]] += [packed.offset[i] + e for e in ends]
    labels[packed.row[i]] += [float(x) for x in r.get("labels", [0.0] * len(ends))]
  slots = -(-max(max(len(p) for p in positions), 1) // max_steps) * max_steps
  step_pos, step_valid = pad_positions(positions, slots)
  step_labels = np.zeros((rows, slots), np.float32)
  for i, row_labels in enumerate(labels):
    step_labels[i, :len(row_labels)] = row_labels
  return {"tokens": packed.tokens, "mask": packed.segments > 0, "positions": packed.positions,
          "segments": packed.segments, "step_pos": step_pos, "step_labels": step_labels,
          "step_valid": step_valid}


def outcome_batch(tokenizer, records: Sequence[dict], length: int) -> dict:
  """Right-padded ORM batch from {"prompt", "solution", "label"} records: the solution
  ends with eos, the token whose scalar is the solution's score."""
  b = len(records)
  tokens = np.full((b, length), tokenizer.pad_id, np.int32)
  mask = np.zeros((b, length), bool)
  label = np.zeros((b,), np.float32)
  for i, r in enumerate(records):
    e = encode_example(tokenizer, r["prompt"], r["solution"])
    seq = e.prompt + e.completion
    if len(seq) > length:
      raise ValueError(f"record {i}: {len(seq)} tokens exceed the batch length {length}")
    tokens[i, :len(seq)] = seq
    mask[i, :len(seq)] = True
    label[i] = float(r.get("label", 0.0))
  return {"tokens": tokens, "mask": mask, "label": label}


def record_length(tokenizer, record: dict) -> int:
  """Tokens a stepwise or outcome record takes in a batch."""
  if "solution" in record:
    e = encode_example(tokenizer, record["prompt"], record["solution"])
    return len(e)
  return len(encode_with_steps(tokenizer, record["prompt"], record["completions"])[0])
