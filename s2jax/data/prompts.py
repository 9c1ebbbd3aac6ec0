"""How a question becomes a prompt, and where the model's answer ends.

Three formats, chosen by the `prompt` block of a config:
- "plain": [bos] question <newline>; the solution follows, ending in eos. The format the
  synthetic task is trained in from scratch.
- "fewshot": fixed GSM8K train exemplars, "Question: ...\\nAnswer:\\n<solution>" each,
  separated by blank lines, then the question; the model's answer ends at eos or at the
  blank line before the next "Question:". For base models.
- "chat": the tokenizer's chat template around an instruction and the question, with the
  generation prompt; the answer ends at the template's end-of-turn (eos). For instruct
  models.
In every format the solution starts on a fresh line, so its steps (one a line) tokenize
the same alone and in context, and a step ends at the tokenizer's step-end id.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

FORMATS = ("plain", "fewshot", "chat")
DEFAULT_INSTRUCTION = ("Solve the math problem step by step, one step a line, and end with "
                       "a line '#### <answer>'.\n\n")


@dataclasses.dataclass(frozen=True)
class PromptFormat:
  kind: str = "plain"
  exemplars: tuple = ()             # ((question, solution), ...) for "fewshot"
  instruction: str = DEFAULT_INSTRUCTION  # for "chat"
  system: str = ""                  # for "chat": a system message ("" = template default)

  def __post_init__(self):
    if self.kind not in FORMATS:
      raise ValueError(f"prompt: kind={self.kind!r} must be one of {FORMATS}")
    if self.kind == "fewshot" and not self.exemplars:
      raise ValueError("prompt: kind='fewshot' needs at least one exemplar")

  def _shots(self) -> str:
    return "".join(f"Question: {q}\nAnswer:\n{a}\n\n" for q, a in self.exemplars)

  def text(self, question: str) -> str:
    if self.kind == "fewshot":
      return f"{self._shots()}Question: {question}\nAnswer:\n"
    raise ValueError(f"prompt kind {self.kind!r} has no plain-text form")

  def shared_prefix(self, tokenizer) -> list:
    """Ids every prompt of this format starts with (the few-shot exemplars), so that a
    sampler can compute them once: ids(q) == shared_prefix + ids(q)[len(shared_prefix):].
    The exemplars end in a blank line, which tokenizers here encode on its own."""
    if self.kind != "fewshot":
      return []
    return tokenizer.encode(self._shots())

  def ids(self, tokenizer, question: str) -> list:
    if self.kind == "plain":
      return [tokenizer.bos_id] + tokenizer.encode(question) + [tokenizer.newline_id]
    if self.kind == "fewshot":
      return tokenizer.encode(self.text(question))
    messages = ([{"role": "system", "content": self.system}] if self.system else []) + [
        {"role": "user", "content": self.instruction + question}]
    return tokenizer.encode(tokenizer.apply_chat_template(messages, add_generation_prompt=True))

  def stop_ids(self, tokenizer) -> tuple:
    """Tokens besides eos that end an answer: the blank line between few-shot exemplars."""
    if self.kind != "fewshot":
      return ()
    blank = tokenizer.encode("\n\n")
    return (blank[0],) if len(blank) == 1 else ()

  def cut(self, output: str) -> str:
    """The answer part of generated text (a few-shot model may go on to a new question)."""
    if self.kind == "fewshot":
      return output.split("\n\n")[0].split("Question:")[0]
    return output


PLAIN = PromptFormat()


def from_config(cfg, train_records: Sequence[dict] | None = None) -> PromptFormat:
  """A PromptFormat from a config's `prompt` block (kind, num_shots, instruction, system);
  few-shot exemplars are the first `num_shots` train records."""
  if cfg is None:
    return PLAIN
  kind = cfg.get("kind", "plain")
  exemplars = ()
  if kind == "fewshot":
    from s2jax.data import gsm8k
    if train_records is None:
      raise ValueError("prompt: kind='fewshot' needs the train records to take exemplars from")
    exemplars = tuple(gsm8k.fewshot_exemplars(list(train_records), cfg.get("num_shots", 8)))
  return PromptFormat(kind=kind, exemplars=exemplars,
                      instruction=cfg.get("instruction", DEFAULT_INSTRUCTION),
                      system=cfg.get("system", ""))


def prompt_format(tokenizer) -> PromptFormat:
  return getattr(tokenizer, "prompt_format", None) or PLAIN
