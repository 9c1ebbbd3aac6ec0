"""Blocks every config file shares, and the `arg` convention of `get_config(arg)`.

Config files (configs/*.py) import this module; the library never reads config files by
path. `arg` is a comma-separated list of words (`"tiny"`, `"verifier,tiny"`); each file
names the words it knows and `words()` rejects any other.
"""
from __future__ import annotations

import os

import ml_collections

from s2jax.config import load_config_file


def words(arg: str, known: tuple, file: str) -> set:
  """The words of `arg` (comma-separated); an unknown one is an error naming the file."""
  out = {w.strip() for w in (arg or "").split(",") if w.strip()}
  unknown = sorted(out - set(known))
  if unknown:
    raise ValueError(f"{os.path.basename(file)}: unknown get_config argument(s) {unknown}; "
                     f"known: {', '.join(known)}")
  return out


def sibling(file: str, name: str, arg: str = "") -> ml_collections.ConfigDict:
  """get_config(arg) of configs/<name> next to `file` (a config file's __file__)."""
  path = os.path.join(os.path.dirname(os.path.abspath(file)), name)
  return load_config_file(f"{path}:{arg}" if arg else path)


def mesh() -> dict:
  """(data, fsdp, tensor); -1 takes the remaining devices."""
  return dict(shape=(-1, 1, 1))


def distributed() -> dict:
  """jax.distributed; coordinator_address "" auto-detects (Cloud TPU, SLURM)."""
  return dict(enabled=False, coordinator_address="", num_processes=1, process_id=0,
              cpu_collectives="gloo")


def optim(**overrides) -> dict:
  """AdamW with warm-up and a decay schedule (s2jax.train.make_optimizer)."""
  d = dict(lr=1e-3, warmup_steps=20, decay_steps=400, final_lr_fraction=0.1,
           schedule="cosine", weight_decay=0.0, b1=0.9, b2=0.99, clip_norm=1.0,
           decay_embeddings=True)
  unknown = set(overrides) - set(d)
  if unknown:
    raise ValueError(f"optim block: unknown key(s) {sorted(unknown)}; known: {sorted(d)}")
  d.update(overrides)
  return d


def runtime(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Adds the mesh and distributed blocks every job has."""
  c.mesh = mesh()
  c.distributed = distributed()
  return c


def ablation(file: str, arg: str, known: tuple = ("tiny",)) -> ml_collections.ConfigDict:
  """The start of every ablation config: its name (the file's: configs/ablations/<name>.py
  runs s2jax.ablations.<name>), the seeds and the shared pipeline's config
  (configs/pipeline.py next to configs/ablations/); `tiny` is the seconds-long pipeline
  with one seed, for tests."""
  tiny = "tiny" in words(arg, known, file)
  c = ml_collections.ConfigDict()
  c.name = os.path.splitext(os.path.basename(file))[0]  # the s2jax.ablations module
  c.seeds = (0,) if tiny else (0, 1, 2)
  pipeline = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(file))), "pipeline.py")
  # 500 problems per split, so paired comparisons can see a 5-point effect
  c.pipeline = load_config_file(pipeline + (":tiny" if tiny else ":eval500"))
  # Arms that train their own policy (other targets, other widths) train it from scratch,
  # all with this one SFT block, so they differ only in what the arm changes; the
  # pipeline's SFT starts from the shipped base policy, which no other arm has.
  c.scratch_sft = load_config_file(pipeline + (":tiny" if tiny else ":scratch,eval500")).sft
  if not tiny:
    c.scratch_sft.train.update(steps=1500)  # 500 steps sit at the guessing floor
    c.scratch_sft.optim.update(decay_steps=1500)
  return c
