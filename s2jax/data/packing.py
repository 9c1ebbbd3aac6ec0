"""First-fit-decreasing packing of sequences into rows of a fixed width.

Several short documents share one row; the model keeps them apart with segment ids (each
token attends only to its own document) and positions that restart at each document.
Used by the sampler's prefill (prompts) and by packed training batches.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np


def first_fit(lengths: Sequence[int], width: int) -> tuple[np.ndarray, np.ndarray, int]:
  """(row, offset) of each sequence and the number of rows: longest first, each into the
  first row with room for it."""
  lengths = np.asarray(lengths, np.int64)
  if lengths.size and lengths.min() <= 0:
    raise ValueError(f"packing: sequence {int(np.argmin(lengths))} is empty")
  if lengths.size and lengths.max() > width:
    raise ValueError(f"packing: sequence {int(np.argmax(lengths))} has {lengths.max()} tokens, "
                     f"more than the row width {width}")
  row = np.zeros(len(lengths), np.int64)
  offset = np.zeros(len(lengths), np.int64)
  room: list[int] = []
  for i in np.argsort(-lengths, kind="stable"):
    r = next((r for r, free in enumerate(room) if free >= lengths[i]), len(room))
    if r == len(room):
      room.append(width)
    row[i], offset[i] = r, width - room[r]
    room[r] -= lengths[i]
  return row, offset, len(room)


class Packed(NamedTuple):
  tokens: np.ndarray     # [R, W] int32, pad_id where no document is
  positions: np.ndarray  # [R, W] int32, 0, 1, ... within each document
  segments: np.ndarray   # [R, W] int32, document index + 1; 0 for padding
  row: np.ndarray        # [N] row of each document
  offset: np.ndarray     # [N] column where each document starts


def pack(seqs: Sequence[Sequence[int]], width: int, pad_id: int,
         rows_multiple: int = 1) -> Packed:
  """Pack `seqs` into rows of `width`; the row count is rounded up to `rows_multiple`
  (so that a few shapes serve every call)."""
  row, offset, n = first_fit([len(s) for s in seqs], width)
  n = -(-max(n, 1) // rows_multiple) * rows_multiple
  tokens = np.full((n, width), pad_id, np.int32)
  positions = np.zeros((n, width), np.int32)
  segments = np.zeros((n, width), np.int32)
  for i, s in enumerate(seqs):
    cols = slice(offset[i], offset[i] + len(s))
    tokens[row[i], cols] = s
    positions[row[i], cols] = np.arange(len(s))
    segments[row[i], cols] = i + 1
  return Packed(tokens, positions, segments, row, offset)
