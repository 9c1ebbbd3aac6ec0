"""Tokenised examples, padded batches and a deterministic, resumable batch order.

The order is a Grain MapDataset of global example indices: `batch_order(...)[step]` is a
pure function of the step (Grain's index shuffle, reseeded each epoch), so a resumed run
sees exactly the batches an uninterrupted one would, with no iterator state to save.
Every process computes the same global batch and loads only its rows
(`sharding.process_rows`), so a batch does not depend on the number of processes.
"""
from __future__ import annotations

import dataclasses
import sys
from typing import Optional, Sequence

import grain
import numpy as np

from s2jax.data import packing, prompts


@dataclasses.dataclass
class Example:
  prompt: list      # the prompt format's ids ([bos] question <nl> by default)
  completion: list  # solution tokens ... eos (the tokens the loss is on)
  # Per completion token: False where the loss skips it (tokens the calculator tool
  # writes, with data.tool_tokens="mask"); None: the loss is on every completion token.
  loss_mask: Optional[list] = None

  def __len__(self):
    return len(self.prompt) + len(self.completion)


TOOL_TOKENS = ("train", "mask")


def encode_example(tokenizer, question: str, solution: str,
                   tool_tokens: str = "train") -> Example:
  """`tool_tokens="mask"` keeps the values the calculator writes (`<<expr=` value `>>`) out
  of the loss: with the tool on while sampling, the model never has to produce them."""
  if tool_tokens not in TOOL_TOKENS:
    raise ValueError(f"data.tool_tokens={tool_tokens!r} must be one of {TOOL_TOKENS}")
  completion = tokenizer.encode(solution) + [tokenizer.eos_id]
  mask = None
  if tool_tokens == "mask":
    from s2jax.calculator import tool_token_mask
    mask = [not t for t in tool_token_mask([tokenizer.decode([i]) for i in completion])]
  return Example(encode_prompt(tokenizer, question), completion, mask)


def encode_prompt(tokenizer, question: str) -> list:
  """The prompt in the tokenizer's prompt format (plain [bos] question <nl> by default)."""
  return prompts.prompt_format(tokenizer).ids(tokenizer, question)


def check_lengths(examples: Sequence[Example], seq_len: int, what: str) -> None:
  if not examples:
    raise ValueError(f"{what}: no examples")
  too_long = [i for i, e in enumerate(examples) if len(e) > seq_len]
  if too_long:
    i = too_long[0]
    raise ValueError(f"{what}: {len(too_long)} example(s) exceed seq_len={seq_len} "
                     f"(first: #{i} with {len(examples[i])} tokens); raise data.seq_len")


def padded_length(examples: Sequence[Example], multiple: int, seq_len: int) -> int:
  """Round the longest example up to a multiple, so few distinct shapes get compiled."""
  longest = max(len(e) for e in examples)
  return min(seq_len, -(-longest // multiple) * multiple)


def make_batch(examples: Sequence[Example], length: int, pad_id: int) -> dict:
  """Right-padded tokens; `targets` marks the tokens the loss predicts (the completion)."""
  b = len(examples)
  tokens = np.full((b, length), pad_id, np.int32)
  mask = np.zeros((b, length), bool)
  targets = np.zeros((b, length), bool)
  for i, e in enumerate(examples):
    ids = e.prompt + e.completion
    tokens[i, :len(ids)] = ids
    mask[i, :len(ids)] = True
    targets[i, len(e.prompt):len(ids)] = True if e.loss_mask is None else e.loss_mask
  return {"tokens": tokens, "mask": mask, "targets": targets}


def make_packed_batch(examples: Sequence[Example], width: int, pad_id: int,
                      rows_multiple: int = 1) -> dict:
  """The examples packed into rows of `width` (s2jax.data.packing): make_batch's tokens and
  targets, several examples to a row, with `positions` that restart at each example and
  `segments` (example + 1, 0 for padding) that keep examples from attending to each other.
  A row's first completion token is never predicted from another example: every example
  starts with its prompt, which is not a target."""
  packed = packing.pack([e.prompt + e.completion for e in examples], width, pad_id,
                        rows_multiple)
  targets = np.zeros(packed.tokens.shape, bool)
  for i, e in enumerate(examples):
    start = packed.offset[i] + len(e.prompt)
    targets[packed.row[i], start:start + len(e.completion)] = (
        True if e.loss_mask is None else e.loss_mask)
  return {"tokens": packed.tokens, "mask": packed.segments > 0, "targets": targets,
          "positions": packed.positions, "segments": packed.segments}


def batch_order(num_examples: int, batch_size: int, seed: int, *,
                lengths: Optional[np.ndarray] = None, window: int = 1):
  """A Grain MapDataset whose element `step` holds the global example indices of batch
  `step`: epochs of fresh permutations, endless.

  With `lengths` and `window > 1` the batches are length-bucketed to cut padding: every
  `window` consecutive batches draw one pool of window * batch_size examples of that
  order, sorted by length and cut into batches whose order within the pool is shuffled.
  """
  if num_examples <= 0:
    raise ValueError(f"batch_order: no examples to draw batches from ({num_examples})")
  ds = grain.MapDataset.range(num_examples).seed(seed).shuffle().repeat()
  if window <= 1 or lengths is None:
    return ds.batch(batch_size)
  lengths = np.asarray(lengths)
  if len(lengths) != num_examples:
    raise ValueError(f"batch_order: {len(lengths)} lengths for {num_examples} examples")
  pools = ds.batch(batch_size * window).random_map(_LengthSortedBatches(lengths, batch_size))
  return _PoolSlots(pools, window)


class _LengthSortedBatches:
  """A pool of indices -> its batches of similar lengths, in a seeded random order."""

  def __init__(self, lengths: np.ndarray, batch_size: int):
    self.lengths, self.batch_size = lengths, batch_size

  def __call__(self, pool: np.ndarray, rng: np.random.Generator) -> list:
    pool = pool[np.argsort(self.lengths[pool], kind="stable")]
    cut = [pool[i:i + self.batch_size] for i in range(0, len(pool), self.batch_size)]
    return [cut[i] for i in rng.permutation(len(cut))]


class _PoolSlots(grain.MapDataset):
  """Element `step` is batch `step % window` of pool `step // window`. The pool is kept
  between consecutive steps: drawing it costs `window` times a batch's shuffle lookups."""

  def __init__(self, pools: grain.MapDataset, window: int):
    super().__init__(pools)
    self._window = window
    self._last = (None, None)

  def __len__(self) -> int:
    return sys.maxsize

  def __getitem__(self, step):
    group, slot = divmod(step, self._window)
    if self._last[0] != group:
      self._last = (group, self._parent[group])
    return self._last[1][slot]


class GroupedBatches:
  """Batches that keep each group's examples together (the within-problem ranking loss
  needs a problem's solutions in one batch): epochs of a seeded shuffle of the groups
  (Grain's), each group's examples consecutive, the stream cut into batches of
  `batch_size` (a group may straddle two). Element `step` is a pure function of the step,
  so a resumed run sees the batches an uninterrupted run would."""

  def __init__(self, groups: Sequence, batch_size: int, seed: int):
    groups = np.asarray(groups)
    if not len(groups):
      raise ValueError("GroupedBatches: no examples to draw batches from")
    _, inverse = np.unique(groups, return_inverse=True)
    self._members = [np.flatnonzero(inverse == g) for g in range(inverse.max() + 1)]
    self._order = grain.MapDataset.range(len(self._members)).seed(seed).shuffle().repeat()
    self._batch_size, self._per_epoch = batch_size, len(groups)
    self._epoch = (None, None)

  def _stream(self, epoch: int) -> np.ndarray:
    if self._epoch[0] != epoch:
      n = len(self._members)
      self._epoch = (epoch, np.concatenate(
          [self._members[self._order[epoch * n + k]] for k in range(n)]))
    return self._epoch[1]

  def __getitem__(self, step: int) -> np.ndarray:
    out: list = []
    while len(out) < self._batch_size:
      epoch, offset = divmod(step * self._batch_size + len(out), self._per_epoch)
      out.extend(self._stream(epoch)[offset:offset + self._batch_size - len(out)])
    return np.asarray(out)
