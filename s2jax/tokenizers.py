"""Tokenizers behind one interface.

Every tokenizer has `encode(text) -> ids` (no special tokens added), `decode(ids)` (special
tokens dropped), `bos_id`, `eos_id`, `pad_id`, `newline_id`, `step_end_id`, `vocab_size`
and an optional `prompt_format` (how a question becomes a prompt; see data/prompts.py).

The newline is the end-of-step marker every stage depends on, so both kinds encode text
line by line and join lines with one newline id: a step's tokens are then identical alone
and in context, and a step ends exactly at a `step_end_id`.
- SentencePiece (`.model`, Llama-2 / Gemma style, and the ones trained here) normalises
  newlines away, so lines are joined by a dedicated `<nl>` piece.
- Hugging Face byte-level BPE (`tokenizer.json`, or the vocabulary inside a GGUF file)
  has a newline token of its own; a run of several newlines is encoded by the tokenizer
  itself (so a blank line is the single token the model was trained on).
`load_tokenizer(path)` picks the kind from the path.
"""
from __future__ import annotations

import io
import json
import os
import re
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
    self.prompt_format = None

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


class HFTokenizer:
  """A Hugging Face `tokenizers` tokenizer (byte-level BPE: GPT-2, Llama-3, SmolLM, Qwen2)
  with its special tokens and chat template."""

  def __init__(self, tokenizer, *, bos: str | None, eos: str, pad: str | None = None,
               chat_template: str | None = None, source: str = ""):
    self.tok = tokenizer
    self.source = source

    def id_of(token, what):
      i = tokenizer.token_to_id(token) if token is not None else None
      if token is not None and i is None:
        raise ValueError(f"{source}: {what} token {token!r} is not in the vocabulary")
      return i
    self.eos_token, self.bos_token = eos, bos or eos
    self.eos_id = id_of(eos, "eos")
    self.bos_id = id_of(self.bos_token, "bos")
    self.pad_token = pad or eos
    self.pad_id = id_of(self.pad_token, "pad")
    newline = tokenizer.encode("\n", add_special_tokens=False).ids
    if len(newline) != 1:
      raise ValueError(f"{source}: a newline must be one token, got {newline}")
    self.newline_id = self.step_end_id = newline[0]
    self.chat_template = chat_template
    self.prompt_format = None
    self._special = {self.bos_id, self.eos_id, self.pad_id}

  @property
  def vocab_size(self) -> int:
    return self.tok.get_vocab_size(with_added_tokens=True)

  def encode(self, text: str) -> list[int]:
    ids: list[int] = []
    for part in re.split(r"(\n+)", text):
      if not part:
        continue
      if part == "\n":
        ids.append(self.newline_id)
      else:
        ids.extend(self.tok.encode(part, add_special_tokens=False).ids)
    return ids

  def decode(self, ids: Sequence[int]) -> str:
    return self.tok.decode([int(t) for t in ids if int(t) not in self._special],
                           skip_special_tokens=True)

  def apply_chat_template(self, messages: list, add_generation_prompt: bool = True) -> str:
    """The instruct model's chat format, rendered as transformers renders it (jinja2 in a
    sandbox)."""
    if not self.chat_template:
      raise ValueError(f"{self.source}: this tokenizer has no chat template")
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(self.chat_template).render(
        messages=messages, add_generation_prompt=add_generation_prompt,
        bos_token=self.bos_token, eos_token=self.eos_token)

  @classmethod
  def from_file(cls, path: str) -> "HFTokenizer":
    """tokenizer.json (a directory holding one is accepted), with special tokens and chat
    template from tokenizer_config.json beside it when present."""
    from tokenizers import Tokenizer
    if os.path.isdir(path):
      path = os.path.join(path, "tokenizer.json")
    if not os.path.isfile(path):
      raise FileNotFoundError(f"tokenizer.json not found: {path}")
    tok = Tokenizer.from_file(path)
    meta = {}
    meta_path = os.path.join(os.path.dirname(path), "tokenizer_config.json")
    if os.path.isfile(meta_path):
      with open(meta_path) as f:
        meta = json.load(f)

    def token(key):
      v = meta.get(key)
      return v.get("content") if isinstance(v, dict) else v
    eos = token("eos_token")
    if eos is None:
      raise ValueError(f"{meta_path}: no eos_token; s2jax needs one to stop generation")
    return cls(tok, bos=token("bos_token"), eos=eos, pad=token("pad_token"),
               chat_template=meta.get("chat_template"), source=path)

  @classmethod
  def from_gguf(cls, path: str) -> "HFTokenizer":
    """The byte-level BPE vocabulary embedded in a GGUF file (tokenizer.ggml.model gpt2)."""
    import gguf
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    if not os.path.isfile(path):
      raise FileNotFoundError(f"GGUF file not found: {path}")
    reader = gguf.GGUFReader(path)

    def field(key, default=None):
      f = reader.fields.get(key)
      return default if f is None else f.contents()
    kind = field("tokenizer.ggml.model")
    if kind != "gpt2":
      raise ValueError(f"{path}: tokenizer.ggml.model={kind!r}; only byte-level BPE "
                       f"('gpt2') vocabularies are read from GGUF")
    pre = field("tokenizer.ggml.pre", "default")
    if pre not in _GGUF_PRE_TOKENIZERS:
      raise ValueError(f"{path}: pre-tokenizer {pre!r} is not supported "
                       f"({sorted(_GGUF_PRE_TOKENIZERS)})")
    tokens = field("tokenizer.ggml.tokens")
    types = field("tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ", 1)) for m in field("tokenizer.ggml.merges")]
    bpe = models.BPE({t: i for i, t in enumerate(tokens)}, merges, fuse_unk=False)
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = _GGUF_PRE_TOKENIZERS[pre](pre_tokenizers)
    tok.decoder = decoders.ByteLevel()
    control = [t for t, ty in zip(tokens, types) if ty == gguf.TokenType.CONTROL]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in control])

    def special(key):
      i = field(f"tokenizer.ggml.{key}_token_id")
      return None if i is None else tokens[int(i)]
    return cls(tok, bos=special("bos"), eos=special("eos"), pad=special("padding"),
               chat_template=field("tokenizer.chat_template"), source=path)

  def save_hf(self, directory: str) -> None:
    """tokenizer.json and tokenizer_config.json, as transformers reads them."""
    os.makedirs(directory, exist_ok=True)
    self.tok.save(os.path.join(directory, "tokenizer.json"))
    meta = dict(bos_token=self.bos_token, eos_token=self.eos_token, pad_token=self.pad_token,
                add_bos_token=False, tokenizer_class="PreTrainedTokenizerFast",
                model_max_length=8192)
    if self.chat_template:
      meta["chat_template"] = self.chat_template
    with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
      json.dump(meta, f, indent=2)


# llama.cpp's pre-tokenizer names → the equivalent `tokenizers` pre-tokenizer.
_GGUF_PRE_TOKENIZERS = {
    "gpt2": lambda pt: pt.ByteLevel(add_prefix_space=False, use_regex=True),
    "default": lambda pt: pt.ByteLevel(add_prefix_space=False, use_regex=True),
    # SmolLM: every digit its own token, then GPT-2's byte-level split.
    "smollm": lambda pt: pt.Sequence([pt.Digits(individual_digits=True),
                                      pt.ByteLevel(add_prefix_space=False, use_regex=True)]),
}


def load_tokenizer(path: str):
  """A tokenizer from its file: `.model` (SentencePiece), `tokenizer.json` or a directory
  holding one (Hugging Face), or a `.gguf` model file (its embedded vocabulary)."""
  if path.endswith(".gguf"):
    return HFTokenizer.from_gguf(path)
  if path.endswith(".json") or os.path.isdir(path):
    return HFTokenizer.from_file(path)
  if path.endswith(".model"):
    return SentencePieceTokenizer(path)
  raise ValueError(f"cannot tell the tokenizer kind of {path!r}: expected a SentencePiece "
                   f".model, a tokenizer.json (or its directory) or a .gguf file")
