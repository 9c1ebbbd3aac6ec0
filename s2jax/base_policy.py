"""A base policy shipped with the package: weights trained once by the project's own SFT
(s2jax/assets/<name>/), so the pipeline starts from a policy that writes valid chains.

  python experiments/base_policy.py --config=configs/base_policy.py --workdir=workdirs/base_policy

trains it (experiments/sft.py's stage) and `export`s the result here. The directory holds
`params.npz` (the parameters, flattened by path), `tokenizer.model` and `policy.json`: the
model, the format and calculator it was trained for, the SHA-256 of params.npz, its greedy
accuracy on the first 100 in-distribution test problems, and the command, commit, config
and launches (with wall times) that produced it. A config's `init_from` names it (or any
directory of that layout); the SFT stage then starts from these weights and tokenizer.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil

import numpy as np

ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
FILES = ("params.npz", "tokenizer.model", "policy.json")
CHECK_PROBLEMS = 100


@dataclasses.dataclass
class BasePolicy:
  directory: str
  meta: dict

  @property
  def params_path(self) -> str:
    return os.path.join(self.directory, "params.npz")

  @property
  def tokenizer_path(self) -> str:
    return os.path.join(self.directory, "tokenizer.model")

  def host_params(self) -> dict:
    """The parameters as a nested dict of NumPy arrays, after checking the file's hash."""
    import flax.traverse_util
    got = sha256(self.params_path)
    if got != self.meta["sha256"]:
      raise ValueError(f"{self.params_path}: SHA-256 {got} is not the {self.meta['sha256']} "
                       "policy.json records; re-export it (experiments/base_policy.py)")
    with np.load(self.params_path) as f:
      flat = {tuple(k.split("/")): f[k] for k in f.files}
    return flax.traverse_util.unflatten_dict(flat)

  def model(self):
    """(Transformer, host parameters, tokenizer), ready for a sampler."""
    import ml_collections
    from s2jax.config import model_config
    from s2jax.models.transformer import Transformer
    from s2jax.tokenizers import SentencePieceTokenizer
    tok = SentencePieceTokenizer(self.tokenizer_path)
    model = Transformer(model_config(ml_collections.ConfigDict(self.meta["config"]["model"]),
                                     vocab_size=tok.vocab_size))
    return model, self.host_params(), tok


def directory(name: str) -> str:
  """A shipped policy's name (s2jax/assets/<name>) or a directory path."""
  return name if os.sep in name or os.path.isdir(name) else os.path.join(ASSETS, name)


def load(name: str) -> BasePolicy:
  d = directory(name)
  missing = [f for f in FILES if not os.path.exists(os.path.join(d, f))]
  if missing:
    raise FileNotFoundError(f"init_from={name!r}: {d} lacks {missing} (shipped policies: "
                            f"{sorted(os.listdir(ASSETS)) if os.path.isdir(ASSETS) else []})")
  with open(os.path.join(d, "policy.json")) as f:
    return BasePolicy(d, json.load(f))


def sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


# The config keys a policy fixes: a run starting from it must agree (what its samples mean).
FIXED = (("data", "format"), ("data", "tool_tokens"), ("eval", "calculator"))


def apply(config) -> BasePolicy:
  """Point an SFT config at `config.init_from`: its model and tokenizer replace the
  config's; the format, tool-token loss and calculator must match what it was trained for."""
  base = load(config.init_from)
  trained = base.meta["config"]
  for block, key in FIXED:
    want, have = trained[block].get(key), config[block].get(key)
    if want != have:
      raise ValueError(f"init_from={config.init_from!r} was trained with {block}.{key}="
                       f"{want!r}; this config has {have!r}")
  config.model = trained["model"]
  config.tokenizer.path = os.path.abspath(base.tokenizer_path)
  return base


def check_records(meta: dict) -> list:
  """The in-distribution test problems its recorded accuracy is measured on."""
  import ml_collections
  from s2jax import tasks
  config = ml_collections.ConfigDict(meta["config"])
  task = tasks.for_config(config)
  return [task.to_json(p) for p in task.generate_split(config, "test", CHECK_PROBLEMS)]


def accuracy(model, params, tokenizer, meta: dict) -> dict:
  """Greedy accuracy and fully valid chains on `check_records(meta)`."""
  import ml_collections
  from s2jax import evaluation, pretrained, tasks
  config = ml_collections.ConfigDict(meta["config"])
  _, summary = evaluation.evaluate_records(
      pretrained.sampler_for(model, tokenizer, config), params, tokenizer,
      check_records(meta), task=tasks.for_config(config), batch_size=CHECK_PROBLEMS,
      max_new_tokens=config.eval.max_new_tokens, desc="base policy check")
  return {"n": summary["n"], "accuracy": summary["accuracy"],
          "fully_valid": summary["fully_valid"]}


def export(workdir: str, out: str) -> dict:
  """Write a trained SFT workdir's final policy to `out` in the layout above."""
  import flax.traverse_util
  import jax
  from s2jax import report, workdirs
  m = workdirs.load_model(workdir)
  os.makedirs(out, exist_ok=True)
  flat = flax.traverse_util.flatten_dict(jax.device_get(m.params), sep="/")
  np.savez_compressed(os.path.join(out, "params.npz"),
                      **{k: np.asarray(v) for k, v in sorted(flat.items())})
  shutil.copyfile(workdirs.tokenizer_path(workdir, m.config), os.path.join(out, "tokenizer.model"))
  config = m.config.to_dict()
  config["tokenizer"]["path"] = ""  # the copy next to the weights
  launches = report.read_launches(workdir)
  meta = {"config": config, "sha256": sha256(os.path.join(out, "params.npz")),
          "trained_in": os.path.abspath(workdir), "launches": launches,
          "train_seconds": sum(r["seconds"] for r in launches)}
  meta["check"] = accuracy(m.model, m.params, m.tokenizer, meta)
  with open(os.path.join(out, "policy.json"), "w") as f:
    json.dump(meta, f, indent=2)
  return meta
