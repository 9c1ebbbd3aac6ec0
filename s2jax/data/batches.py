"""Tokenised examples, padded batches and a deterministic, resumable batch order."""
from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np

from s2jax.data import prompts


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


def batch_indices(step: int, batch_size: int, num_examples: int, seed: int) -> np.ndarray:
  """Global example indices of batch `step`: epochs of fresh permutations, a pure function
  of the step so that a resumed run sees exactly the batches it would have seen."""
  start = step * batch_size
  out = []
  while len(out) < batch_size:
    epoch, offset = divmod(start + len(out), num_examples)
    perm = np.random.default_rng([seed, epoch]).permutation(num_examples)
    take = min(batch_size - len(out), num_examples - offset)
    out.extend(perm[offset:offset + take])
  return np.asarray(out)


def bucketed_batch_indices(step: int, batch_size: int, lengths: np.ndarray, seed: int,
                           window: int) -> np.ndarray:
  """Like `batch_indices`, but batches of similar lengths to cut padding waste.

  Every `window` consecutive batches draw one pool of window*batch_size examples, sorted by
  length and cut into batches whose order is shuffled. Still a pure function of the step,
  so resumed runs see the same batches; `window <= 1` is plain `batch_indices`.
  """
  if window <= 1:
    return batch_indices(step, batch_size, len(lengths), seed)
  group, slot = divmod(step, window)
  pool = batch_indices(group, batch_size * window, len(lengths), seed)
  pool = pool[np.argsort(lengths[pool], kind="stable")]
  order = np.random.default_rng([seed, group, 1]).permutation(window)
  b = order[slot]
  return pool[b * batch_size:(b + 1) * batch_size]
