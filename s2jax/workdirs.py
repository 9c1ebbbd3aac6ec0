"""Loading what a training job left in its workdir: config, tokenizer and parameters."""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import jax
import ml_collections

from s2jax import checkpoints, sharding
from s2jax.config import model_config
from s2jax.models.transformer import Transformer
from s2jax.data import gsm8k, prompts
from s2jax.tokenizers import load_tokenizer


def read_config(workdir: str) -> ml_collections.ConfigDict:
  cfg_path = os.path.join(workdir, "config.json")
  if not os.path.isfile(cfg_path):
    raise FileNotFoundError(f"{workdir} is not a training workdir: no config.json")
  with open(cfg_path) as f:
    return ml_collections.ConfigDict(json.load(f))


def tokenizer_path(workdir: str, config) -> str:
  return config.tokenizer.path or os.path.join(workdir, "tokenizer.model")


def tokenizer(workdir: str, config):
  """The workdir's tokenizer (SentencePiece, tokenizer.json or a GGUF vocabulary) with
  the prompt format its model was trained with (config `prompt`; plain without one)."""
  tok = load_tokenizer(tokenizer_path(workdir, config))
  cfg = config.get("prompt")
  train = None
  if cfg is not None and cfg.get("kind") == "fewshot":
    train = gsm8k.read_jsonl(os.path.join(workdir, "data", "train.jsonl"))
  tok.prompt_format = prompts.from_config(cfg, train)
  return tok


@dataclasses.dataclass(frozen=True)
class LoadedModel:
  """What a training workdir (policy or verifier) holds, ready to run."""
  model: Transformer
  params: Any
  tokenizer: Any
  config: ml_collections.ConfigDict
  mesh: Any


def load_model(workdir: str, step=None) -> LoadedModel:
  """The model, its parameters (restored into their shardings), tokenizer, config and
  mesh of a training workdir (policy or verifier)."""
  config = read_config(workdir)
  tok = tokenizer(workdir, config)
  model = Transformer(model_config(config.model, vocab_size=tok.vocab_size))
  mesh = sharding.make_mesh(config.mesh.shape)
  params = sharding.abstract_params(model, mesh)  # shapes to restore into; nothing computed
  ckpt = checkpoints.Checkpointer(os.path.join(workdir, "checkpoints"))
  step = ckpt.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints")
  params = ckpt.restore({"params": params}, step)["params"]  # no optimizer state needed
  ckpt.close()
  return LoadedModel(model, params, tok, config, mesh)


def derive_policy_workdir(source: str, workdir: str, *, model: dict | None = None,
                          **extra) -> ml_collections.ConfigDict:
  """Make `workdir` loadable as a policy like `source` (an SFT or derived workdir): its
  config (tokenizer by absolute path, the model with `model` overrides, `extra` keys
  added) and its data splits (linked). Self-distillation rounds and RL runs write their
  checkpoints there, so every later stage (evaluation, search, the next round) treats
  them like the SFT policy."""
  config = read_config(source)
  config.tokenizer.path = os.path.abspath(tokenizer_path(source, config))
  if model:
    config.model.update(model)
  d = config.to_dict()
  d.update(extra, derived_from=os.path.abspath(source))
  os.makedirs(workdir, exist_ok=True)
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      json.dump(d, f, indent=2, default=list)
    data = os.path.join(workdir, "data")
    if not os.path.exists(data):
      os.symlink(os.path.abspath(os.path.join(source, "data")), data)
  return ml_collections.ConfigDict(d)
