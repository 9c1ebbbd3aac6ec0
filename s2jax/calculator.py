"""Calculator tool use while sampling, as the GSM8K paper sampled: once a row has written
`<<expr=`, the tool writes the value of `expr` and `>>`, and the model goes on from there.

The sampler's jitted loop follows every row's characters with a small state machine
(`CalculatorTables`: each token id's characters as codes) and collects the expression
after `<<`. Only on the step where some row writes the `=` does it leave the device: one
`jax.pure_callback` evaluates every such row's expression exactly with the task's evaluator
(+ - * /, parentheses, decimals; anything else, a division by zero or a value longer than
the tool writes, writes nothing and the model continues alone) and returns the tokens to force. No host round trip per token.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from s2jax.tasks.arith import exact_eval

MAX_EXPR = 64       # characters of an expression the tool reads
MAX_FORCED = 24     # tokens it may write: the value and ">>"
_CHARS_NEEDED = "0123456789.-"


def format_value(v) -> str:
  """How the tool writes a value (an exact Fraction, or a float): an integer without a
  point and exact however large, otherwise rounded to six decimals without trailing zeros
  (GSM8K's own annotations look like this)."""
  if v == int(v):
    return str(int(v))
  return f"{float(v):.6f}".rstrip("0").rstrip(".")


@dataclasses.dataclass(eq=False)  # hashed by identity: the jitted sampler keys on it
class Calculator:
  """Token tables of one tokenizer for the in-loop state machine, and the callback."""
  chars: np.ndarray          # [V, W] int32 character codes of each token's text, 0 = none
  char_ids: dict             # character -> the token id that is exactly that character
  close_ids: tuple           # the tokens of ">>"

  @classmethod
  def for_tokenizer(cls, tokenizer) -> "Calculator":
    texts = [tokenizer.decode([t]) for t in range(tokenizer.vocab_size)]
    width = max(1, max(len(t) for t in texts))
    chars = np.zeros((tokenizer.vocab_size, width), np.int32)
    for t, text in enumerate(texts):
      chars[t, :len(text)] = [ord(c) for c in text]
    exact = {}
    for t, text in enumerate(texts):
      if t not in (tokenizer.eos_id, tokenizer.pad_id):
        exact.setdefault(text, t)
    missing = [c for c in _CHARS_NEEDED if c not in exact]
    if missing:
      raise ValueError(f"calculator: the tokenizer has no single-character token for "
                       f"{missing}; the tool writes values digit by digit")

    def as_written(text, piece):
      # Several tokens can spell one character (SentencePiece's byte-fallback <0x33> and
      # the piece "3"): the tool must write the one the tokenizer gives that character in
      # an annotation, i.e. what the model was trained on, or its next tokens go astray.
      ids = tokenizer.encode(text)
      return ids[-1] if ids and tokenizer.decode([ids[-1]]) == piece else None
    char_ids = {c: as_written(f"<<1+1={c}", c) or as_written(f"<<1+1=1{c}", c) or exact[c]
                for c in _CHARS_NEEDED}
    close_id = as_written("<<1+1=2>>", ">>") or exact.get(">>")
    close = (close_id,) if close_id is not None else tuple([exact[">"]] * 2) \
        if ">" in exact else None
    if close is None:
      raise ValueError("calculator: the tokenizer has no '>>' or '>' token to close with")
    return cls(chars, char_ids, close)

  def forced_tokens(self, expr: str) -> Optional[list]:
    """The tokens the tool writes after `<<expr=`, or None when it cannot evaluate it."""
    v = exact_eval(expr)
    if v is None:
      return None
    ids = [self.char_ids[c] for c in format_value(v)] + list(self.close_ids)
    return ids if len(ids) <= MAX_FORCED else None

  def callback(self, buffers: np.ndarray, lengths: np.ndarray,
               triggered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Host side of the loop: [B, MAX_EXPR] codes, [B] lengths, [B] bool → the forced
    tokens [B, MAX_FORCED] and their count [B] (0: nothing to write)."""
    buffers, lengths, triggered = map(np.asarray, (buffers, lengths, triggered))
    out = np.zeros((len(buffers), MAX_FORCED), np.int32)
    count = np.zeros(len(buffers), np.int32)
    for i in np.flatnonzero(triggered):
      n = int(lengths[i])
      if n > MAX_EXPR:  # longer than the buffer held: not this tool's expression
        continue
      ids = self.forced_tokens("".join(chr(c) for c in buffers[i, :n]))
      if ids:
        out[i, :len(ids)] = ids
        count[i] = len(ids)
    return out, count


def tool_token_mask(token_texts) -> list:
  """Which tokens of a text (given as each token's text) the calculator writes: after every
  `<<expr=`, the tokens up to and including the one that holds `>>`. The same character
  rules as the sampler's state machine, so training masks exactly what sampling forces."""
  out, mode, prev, writing = [], 0, "", False
  for text in token_texts:
    out.append(writing)
    if writing and ">>" in text:
      writing = False
      continue
    for c in text:
      if mode == 0:
        if prev == "<" and c == "<":
          mode, c = 1, ""
      elif c == "=":
        mode, writing = 0, True
      elif c in "<>\n":
        mode = 0
      prev = c
  return out

