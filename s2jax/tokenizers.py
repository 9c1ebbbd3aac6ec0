"""Tokenizers behind one interface.

SentencePiece normalises newlines away, yet the newline is the end-of-step marker every
stage depends on. So the newline is handled explicitly: text is split on "\\n", each line
is encoded on its own, and lines are joined by a dedicated `<nl>` piece. A step's tokens
are therefore identical alone and in context, and a step ends exactly at an `<nl>` id.
"""
from __future__ import annotations

import io
import os
from typing import Iterable, Sequence

import sentencepiece as spm

NEWLINE_PIECE = "<nl>"


class SentencePieceTokenizer:
  def __init__(self, model_path: str):
    if not os.path.isfile(model_path):
      raise FileNotFoundError(f"SentencePiece model not found: {model_path}")
    self.path = model_path
    self.sp = spm.SentencePieceProcessor(model_file=model_path)
    self.newline_id = self.sp.piece_to_id(NEWLINE_PIECE)
    if self.newline_id == self.sp.unk_id():
      raise ValueError(f"{model_path} has no {NEWLINE_PIECE!r} piece; train it with "
                       f"s2jax.tokenizers.train_sentencepiece")
    self.pad_id = self.sp.pad_id()
    self.bos_id = self.sp.bos_id()
    self.eos_id = self.sp.eos_id()
    if min(self.pad_id, self.bos_id, self.eos_id) < 0:
      raise ValueError(f"{model_path} needs pad, bos and eos pieces")
    self.step_end_id = self.newline_id

  @property
  def vocab_size(self) -> int:
    return self.sp.get_piece_size()

  def encode(self, text: str) -> list[int]:
    ids: list[int] = []
    for i, line in enumerate(text.split("\n")):
      if i:
        ids.append(self.newline_id)
      if line:
        ids.extend(self.sp.encode(line))
    return ids

  def decode(self, ids: Sequence[int]) -> str:
    lines, cur = [], []
    for t in ids:
      t = int(t)
      if t == self.newline_id:
        lines.append(self.sp.decode(cur))
        cur = []
      elif t in (self.pad_id, self.bos_id, self.eos_id):
        continue
      else:
        cur.append(t)
    lines.append(self.sp.decode(cur))
    return "\n".join(lines)


def train_sentencepiece(texts: Iterable[str], model_prefix: str, vocab_size: int = 512) -> str:
  """Train a BPE SentencePiece model with single-digit tokens and an explicit `<nl>` piece.

  Returns the path of the `.model` file. Byte fallback keeps unseen text encodable.
  """
  lines = [line for t in texts for line in t.split("\n") if line.strip()]
  if not lines:
    raise ValueError("cannot train a tokenizer on an empty corpus")
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(lines), model_writer=model, model_type="bpe",
      vocab_size=vocab_size, hard_vocab_limit=False, split_digits=True, byte_fallback=True,
      character_coverage=1.0, user_defined_symbols=[NEWLINE_PIECE],
      pad_id=0, unk_id=1, bos_id=2, eos_id=3, num_threads=2, minloglevel=2)
  path = model_prefix + ".model"
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "wb") as f:
    f.write(model.getvalue())
  return path
