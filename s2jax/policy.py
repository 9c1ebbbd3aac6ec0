"""The SFT policy a later stage starts from, loaded from its workdir, with cached samples.

Verifier training, search and RL all need many samples from the same policy; they are
written once under <policy_workdir>/samples, keyed by everything that determines them.
"""
from __future__ import annotations

import hashlib
import json
import os

import jax

from s2jax import checkpoints, evaluation, sharding, workdirs
from s2jax.data import gsm8k, jsonl
from s2jax.sampling import Sampler, SamplingConfig
from s2jax import tasks


class Policy:
  """A policy workdir; the model is loaded on first use (a fully cached run never loads it)."""

  def __init__(self, workdir: str, step: int = -1):
    self.workdir = workdir
    self.config = workdirs.read_config(workdir)
    self.tokenizer_path = os.path.abspath(workdirs.tokenizer_path(workdir, self.config))
    ckpt = checkpoints.Checkpointer(os.path.join(workdir, "checkpoints"))
    self.step = ckpt.latest_step() if step < 0 else step
    ckpt.close()
    if self.step is None:
      raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints")
    self._loaded = None
    self.task = tasks.for_config(self.config)

  def load(self) -> workdirs.LoadedModel:
    if self._loaded is None:
      self._loaded = workdirs.load_model(self.workdir, self.step)
    return self._loaded

  def tokenizer(self):
    """The tokenizer with the policy's prompt format, without loading the model."""
    if self._loaded is not None:
      return self._loaded.tokenizer
    return workdirs.tokenizer(self.workdir, self.config)

  @property
  def planned(self) -> bool:
    """Whether the policy writes the planned chain of thought (a plan line first): the
    prefixes planted for it (corrupted references) must too."""
    return self.config.get("data", {}).get("format", "cot") == "plan"

  def sampler(self, max_cache_len: int) -> Sampler:
    m = self.load()
    return Sampler(m.model, pad_id=m.tokenizer.pad_id, eos_id=m.tokenizer.eos_id,
                   max_cache_len=max_cache_len, calculator=self.calculator())

  def calculator(self):
    """The calculator tool when the policy samples with it (`eval.calculator` of its
    config), else None; built once."""
    if not self.config.get("eval", {}).get("calculator", False):
      return None
    if getattr(self, "_calculator", None) is None:
      from s2jax.calculator import Calculator
      self._calculator = Calculator.for_tokenizer(self.tokenizer())
    return self._calculator

  def split_path(self, name: str) -> str:
    path = os.path.join(self.workdir, "data", f"{name}.jsonl")
    if not os.path.isfile(path):
      raise FileNotFoundError(f"policy workdir has no split {name!r}: {path}")
    return path

  def cache_path(self, kind: str, **key) -> str:
    tag = hashlib.sha1(json.dumps(key, sort_keys=True, default=list).encode()).hexdigest()[:10]
    return os.path.join(self.workdir, "samples", f"{kind}_step{self.step}_{tag}.jsonl")

  def samples(self, split: str, num_problems: int, per_problem: int, *, seed: int,
              sampling: SamplingConfig, batch_size: int, max_new_tokens: int,
              max_cache_len: int) -> list:
    """The first `num_problems` records of `split`, each with "samples": `per_problem`
    solution texts and "sample_tokens": (prompt, generated) token counts per sample, from
    the cache when they were drawn before."""
    path = self.cache_path(f"samples_{split}", n=num_problems, k=per_problem, seed=seed,
                           sampling=[sampling.temperature, sampling.top_k, sampling.top_p],
                           max_new=max_new_tokens)
    if os.path.exists(path):
      return jsonl.read_jsonl(path, lambda r, where: r, what="cached samples")
    records = gsm8k.read_jsonl(self.split_path(split))[:num_problems]
    if not records:
      raise ValueError(f"split {split!r} of {self.workdir} is empty")
    m = self.load()
    params, tok, mesh = m.params, m.tokenizer, m.mesh
    questions = [r["question"] for r in records for _ in range(per_problem)]
    texts, counts = evaluation.generate_solutions(
        self.sampler(max_cache_len), params, tok, questions, batch_size=batch_size,
        max_new_tokens=max_new_tokens, sampling=sampling, rng=jax.random.key(seed),
        desc=f"sample {split}", batch_sharding=sharding.batch_sharding(mesh, 2, batch_size),
        with_counts=True)
    per = lambda xs, i: xs[i * per_problem:(i + 1) * per_problem]
    out = [dict(r, samples=per(texts, i), sample_tokens=per(counts, i))
           for i, r in enumerate(records)]
    if jax.process_index() == 0:
      jsonl.write_jsonl(path, out)
    return out

  def evaluate(self, *, num_problems: int, batch_size: int, max_new_tokens: int,
               max_cache_len: int, params=None) -> dict:
    """Greedy accuracy on the first `num_problems` of every evaluation split → {split:
    summary}. Cached for the checkpoint's own weights (`params=None`)."""
    path = self.cache_path("eval", n=num_problems, max_new=max_new_tokens)
    if params is None and os.path.exists(path):
      with open(path) as f:
        return json.load(f)
    records = {name: gsm8k.read_jsonl(self.split_path(name))[:num_problems]
               for name in self.task.eval_split_names(self.config)}
    m = self.load()
    own, tok, mesh = m.params, m.tokenizer, m.mesh
    summaries, _ = evaluation.evaluate_splits(
        self.sampler(max_cache_len), own if params is None else params, tok, records,
        task=self.task, batch_size=batch_size, max_new_tokens=max_new_tokens,
        batch_sharding=sharding.batch_sharding(mesh, 2, batch_size))
    if params is None and jax.process_index() == 0:
      os.makedirs(os.path.dirname(path), exist_ok=True)
      with open(path, "w") as f:
        json.dump(summaries, f, indent=2)
    return summaries
