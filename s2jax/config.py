"""Config plumbing: dataclasses from ConfigDicts, validation, override checks."""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
from typing import Any, Sequence

import ml_collections

from s2jax.models.transformer import ModelConfig


def model_config(cfg: ml_collections.ConfigDict, vocab_size: int | None = None) -> ModelConfig:
  d = dict(cfg.to_dict())
  if vocab_size is not None:
    d["vocab_size"] = vocab_size
  unknown = set(d) - {f.name for f in dataclasses.fields(ModelConfig)}
  if unknown:
    raise ValueError(f"model config: unknown key(s) {sorted(unknown)}")
  return ModelConfig(**d)


def require(cond: bool, key: str, value: Any, why: str) -> None:
  if not cond:
    raise ValueError(f"config: {key}={value!r} {why}")


def validate_train_config(config) -> None:
  """Checks the values no dataclass owns; the model and task dataclasses check their own."""
  d = config.data
  from s2jax.data.formats import FORMATS
  require(d.get("format", "cot") in FORMATS, "data.format", d.get("format"),
          f"must be one of {FORMATS}")
  from s2jax.data.batches import TOOL_TOKENS
  require(d.get("tool_tokens", "train") in TOOL_TOKENS, "data.tool_tokens",
          d.get("tool_tokens"), f"must be one of {TOOL_TOKENS}")
  checks = [("data.seq_len", d.seq_len), ("data.pad_multiple", d.pad_multiple)]
  if d.get("source", "synthetic") == "synthetic":
    checks += [("data.num_train", d.num_train),
               ("tokenizer.vocab_size", config.tokenizer.vocab_size)]
  else:  # GSM8K: 0 means the whole split
    require(d.source in ("jsonl", "tfds"), "data.source", d.source,
            "must be 'synthetic', 'jsonl' or 'tfds'")
    require(isinstance(d.num_train, int) and d.num_train >= 0, "data.num_train", d.num_train,
            "must be >= 0 (0: the whole split)")
  for key, v in checks:
    require(isinstance(v, int) and v > 0, key, v, "must be a positive integer")
  validate_optim_config(config)


def validate_optim_config(config) -> None:
  """The train/optim/mesh blocks every training job (SFT, verifier, RL) shares."""
  t = config.train
  # 0 steps is allowed from given weights (a base policy, evaluated as it is).
  start_given = bool(config.get("init_from", "")) or "pretrained" in config
  require(isinstance(t.steps, int) and t.steps >= (0 if start_given else 1), "train.steps",
          t.steps, "must be a positive integer" + (" or 0" if start_given else ""))
  for key, v in (("train.batch_size", t.batch_size), ("train.grad_accum", t.grad_accum)):
    require(isinstance(v, int) and v > 0, key, v, "must be a positive integer")
  require(t.batch_size % t.grad_accum == 0, "train.batch_size", t.batch_size,
          f"must be divisible by train.grad_accum={t.grad_accum}")
  require(t.keep_checkpoints >= 1, "train.keep_checkpoints", t.keep_checkpoints, "must be >= 1")
  validate_optimizer(config)


def validate_optimizer(config) -> None:
  """The optim and mesh blocks (RL has no `train.steps`: it counts iterations)."""
  o = config.optim
  require(o.lr > 0, "optim.lr", o.lr, "must be positive")
  require(o.clip_norm > 0, "optim.clip_norm", o.clip_norm, "must be positive")
  require(0 <= o.b1 < 1 and 0 <= o.b2 < 1, "optim.b1/b2", (o.b1, o.b2), "must be in [0, 1)")
  require(o.warmup_steps >= 0, "optim.warmup_steps", o.warmup_steps, "must be >= 0")
  require(len(config.mesh.shape) == 3, "mesh.shape", tuple(config.mesh.shape),
          "must have 3 entries (data, fsdp, tensor)")


def load_config_file(path: str) -> ml_collections.ConfigDict:
  """`get_config()` of a config file; `path:arg` passes arg to get_config."""
  file, _, arg = path.partition(":")
  if not os.path.isfile(file):
    raise FileNotFoundError(f"config file not found: {file}")
  spec = importlib.util.spec_from_file_location("_s2jax_config", file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def check_override_keys(argv: Sequence[str], flag: str = "config") -> None:
  """Exit with a clear message if a `--config.a.b=v` override names a key that does not
  exist (ml_collections would raise a bare AttributeError deep inside flag parsing)."""
  path = next((a.split("=", 1)[1] for a in argv if a.startswith(f"--{flag}=")), None)
  if path is None:
    return
  config = load_config_file(path)
  for a in argv:
    if not a.startswith(f"--{flag}."):
      continue
    key = a[len(flag) + 3:].split("=", 1)[0]
    node = config
    for i, part in enumerate(key.split(".")):
      if not isinstance(node, (ml_collections.ConfigDict, dict)) or part not in node:
        level = ".".join(key.split(".")[:i]) or "(top level)"
        known = sorted(node.keys()) if isinstance(node, (ml_collections.ConfigDict, dict)) else []
        sys.exit(f"error: unknown config key '{key}' in --{flag}.{key}; "
                 f"keys under {level}: {', '.join(known)}")
      node = node[part]
