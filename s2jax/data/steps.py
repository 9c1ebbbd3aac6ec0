"""Where a reasoning step ends, in text and in tokens: the one definition every stage uses.

A step is one line of a solution; it ends at the tokenizer's end-of-step id (`<nl>`).
A step's label or score lives on that end-of-step token, in training and in scoring
alike. Because the tokenizer encodes each line on its own, a step's tokens are the same
whether it is encoded alone or inside a whole solution, so the two positions agree.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from s2jax.data.batches import encode_prompt


def encode_steps(tokenizer, steps: Sequence[str], final: str | None = None) -> tuple[list, list]:
  """Completion ids for `steps` (each closed by end-of-step) and an optional final line
  (closed by eos); returns (ids, index of each step's end-of-step token in ids)."""
  ids, ends = [], []
  for s in steps:
    if "\n" in s:
      raise ValueError(f"a step must be a single line, got {s!r}")
    ids.extend(tokenizer.encode(s))
    ids.append(tokenizer.step_end_id)
    ends.append(len(ids) - 1)
  if final is not None:
    ids.extend(tokenizer.encode(final))
    ids.append(tokenizer.eos_id)
  return ids, ends


def encode_with_steps(tokenizer, question: str, steps: Sequence[str]) -> tuple[list, list]:
  """Prompt plus completed steps, as the policy sees them and the PRM scores them; returns
  (ids, index of each step's end-of-step token in ids)."""
  prompt = encode_prompt(tokenizer, question)
  ids, ends = encode_steps(tokenizer, steps)
  return prompt + ids, [len(prompt) + e for e in ends]


def step_end_positions(completion: Sequence[int], step_end_id: int, eos_id: int | None = None,
                       length: int | None = None) -> list:
  """Indices of end-of-step tokens in generated ids, up to eos or `length`."""
  out = []
  n = len(completion) if length is None else min(length, len(completion))
  for i in range(n):
    t = int(completion[i])
    if eos_id is not None and t == eos_id:
      break
    if t == step_end_id:
      out.append(i)
  return out


def pad_positions(rows: Sequence[Sequence[int]], width: int | None = None):
  """Ragged per-row positions → ([B, S] int32, [B, S] bool valid)."""
  width = max([len(r) for r in rows] + [1]) if width is None else width
  pos = np.zeros((len(rows), width), np.int32)
  valid = np.zeros((len(rows), width), bool)
  for i, r in enumerate(rows):
    if len(r) > width:
      raise ValueError(f"row {i} has {len(r)} steps, more than the {width} slots")
    pos[i, :len(r)] = r
    valid[i, :len(r)] = True
  return pos, valid
