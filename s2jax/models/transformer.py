"""A Llama-family decoder-only transformer, pure-functional Flax.

RMSNorm, rotary embeddings (rotate-half convention, as in HF Llama), SwiGLU MLP and
grouped-query attention; optional tied embeddings and QKV biases so Llama, Qwen2 and
SmolLM checkpoints fit. One class serves the policy (LM head), the verifier and the
value function (scalar head): which heads exist is configuration.

The layer stack runs under `nn.scan` (compile time and memory stay flat with depth),
optionally rematerialised. Every parameter carries logical axis names; `s2jax.sharding`
maps them onto a mesh.

Calling convention (one path for training, scoring and cached decoding):
  tokens     [B, T] int32
  positions  [B, T] int32   rotary position of each token (per row: left padding)
  kv_mask    [B, S] bool    which key slots hold real tokens (S = T without a cache)
  cache      KVCache or None; with a cache, the T new tokens are written at slots
             [cache_index, cache_index + T) and attend to every valid slot at or before
             their own. cache_index is one slot for all rows, or [B] (a slot per row).
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple, Optional

import jax
import jax.numpy as jnp
from flax import linen as nn

Array = jax.Array

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
_REMAT_POLICIES = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  vocab_size: int
  d_model: int
  n_layers: int
  n_heads: int
  n_kv_heads: int
  mlp_dim: int
  head_dim: Optional[int] = None  # defaults to d_model // n_heads
  rope_theta: float = 10000.0
  norm_eps: float = 1e-5
  tie_embeddings: bool = False
  qkv_bias: bool = False
  lm_head: bool = True
  scalar_head: bool = False
  dtype: str = "float32"        # compute dtype
  param_dtype: str = "float32"  # storage dtype of parameters
  remat: str = "none"           # none | full | dots
  init_std: float = 0.02
  # True: one `nn.scan` over stacked layer weights (params["layers"], flat compile time;
  # training). False: a Python loop over per-layer weights (params["layer_<i>"]); the
  # sampler decodes this way, because inside a decode loop a scan copies every layer's
  # weights and cache slice out of the stack at every token.
  scan_layers: bool = True
  # Layers per scan iteration (nn.scan's unroll); 0 unrolls them all: straight-line code,
  # whose backward pass needs no zero-filled stacked buffers for the layers' activations
  # (11% of a train step's op time on CPU: results/bench_train_variants.json).
  scan_unroll: int = 1
  # One matmul for q, k and v (and one for the MLP's gate and up) on weights concatenated at
  # compute time: the parameters keep their layout, so checkpoints are unchanged.
  fused_qkv: bool = False
  fused_mlp: bool = False

  # The keys above that change how the model computes, never its parameters or (up to
  # float rounding) its outputs: a policy trained under one setting is the same policy
  # under another (tests/test_transformer.py).
  COMPUTE_LAYOUT: ClassVar[tuple[str, ...]] = ("remat", "scan_unroll", "fused_qkv",
                                                "fused_mlp")

  def __post_init__(self):
    def bad(key, why):
      raise ValueError(f"model config: {key}={getattr(self, key)!r} {why}")
    for key in ("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "mlp_dim"):
      if not isinstance(getattr(self, key), int) or getattr(self, key) <= 0:
        bad(key, "must be a positive integer")
    if self.n_heads % self.n_kv_heads:
      bad("n_heads", f"must be a multiple of n_kv_heads={self.n_kv_heads}")
    if self.head_dim is None and self.d_model % self.n_heads:
      bad("d_model", f"must be divisible by n_heads={self.n_heads} (or set head_dim)")
    if self.head_dim is not None and (self.head_dim <= 0 or self.head_dim % 2):
      bad("head_dim", "must be a positive even integer")
    if self.head_dim is None and (self.d_model // self.n_heads) % 2:
      bad("d_model", "d_model // n_heads must be even for rotary embeddings")
    if self.dtype not in _DTYPES:
      bad("dtype", f"must be one of {sorted(_DTYPES)}")
    if self.param_dtype not in _DTYPES:
      bad("param_dtype", f"must be one of {sorted(_DTYPES)}")
    if not isinstance(self.scan_unroll, int) or not 0 <= self.scan_unroll <= self.n_layers:
      bad("scan_unroll", f"must be an integer in [0, n_layers={self.n_layers}] (0: all)")
    if self.remat not in _REMAT_POLICIES:
      bad("remat", f"must be one of {sorted(_REMAT_POLICIES)}")
    if not (self.lm_head or self.scalar_head):
      bad("lm_head", "and scalar_head are both off: the model needs at least one head")

  @property
  def dim_per_head(self) -> int:
    return self.head_dim or self.d_model // self.n_heads

  @property
  def compute_dtype(self):
    return _DTYPES[self.dtype]

  @property
  def storage_dtype(self):
    return _DTYPES[self.param_dtype]

  def num_params(self, include_embedding: bool = True) -> int:
    d, f, h, k, dh = self.d_model, self.mlp_dim, self.n_heads, self.n_kv_heads, self.dim_per_head
    per_layer = 2 * d + d * dh * (h + 2 * k) + h * dh * d + 3 * d * f
    if self.qkv_bias:
      per_layer += dh * (h + 2 * k)
    n = self.n_layers * per_layer + d
    emb = self.vocab_size * d
    if include_embedding:
      n += emb
    if self.lm_head and not self.tie_embeddings:
      n += emb
    if self.scalar_head:
      n += d + 1
    return n


class KVCache(NamedTuple):
  """Keys and values of every layer: stacked [layers, B, S, kv_heads, head_dim] for a
  scanned model, a tuple of per-layer [B, S, kv_heads, head_dim] arrays otherwise (each
  then updated in place by the decode loop)."""
  k: Any
  v: Any

  @classmethod
  def zeros(cls, cfg: ModelConfig, batch: int, length: int) -> "KVCache":
    shape = (batch, length, cfg.n_kv_heads, cfg.dim_per_head)
    if cfg.scan_layers:
      shape = (cfg.n_layers,) + shape
      return cls(jnp.zeros(shape, cfg.compute_dtype), jnp.zeros(shape, cfg.compute_dtype))
    return cls(tuple(jnp.zeros(shape, cfg.compute_dtype) for _ in range(cfg.n_layers)),
               tuple(jnp.zeros(shape, cfg.compute_dtype) for _ in range(cfg.n_layers)))


class Output(NamedTuple):
  logits: Optional[Array]   # [B, T, V] float32, or None without an LM head
  scalars: Optional[Array]  # [B, T] float32, or None without a scalar head
  cache: Optional[KVCache]


def _param(module, name, axes, shape, dtype, init=None):
  init = init or nn.initializers.normal(module.cfg.init_std)
  return module.param(name, nn.with_logical_partitioning(init, axes), shape, dtype)


def _matmul(x, w):
  """[B, T, i] @ [i, o] as one 2-D matmul: XLA:CPU runs batched-dim einsums far slower."""
  b, t, i = x.shape
  return (x.reshape(b * t, i) @ w).reshape(b, t, w.shape[-1])


def _project(x, w):
  """[B, T, d] @ [d, H, D] → [B, T, H, D]."""
  d, h, k = w.shape
  return _matmul(x, w.reshape(d, h * k)).reshape(x.shape[0], x.shape[1], h, k)


class RMSNorm(nn.Module):
  cfg: ModelConfig

  @nn.compact
  def __call__(self, x):
    scale = _param(self, "scale", ("embed",), (x.shape[-1],), self.cfg.storage_dtype,
                   nn.initializers.ones)
    x32 = x.astype(jnp.float32)
    x32 = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.cfg.norm_eps)
    return (x32 * scale.astype(jnp.float32)).astype(self.cfg.compute_dtype)


def rotary(x: Array, positions: Array, theta: float) -> Array:
  """Rotate-half rotary embedding. x: [B, T, H, D], positions: [B, T]."""
  d = x.shape[-1]
  inv_freq = 1.0 / (theta ** (jnp.arange(0, d, 2, dtype=jnp.float32) / d))
  angles = positions.astype(jnp.float32)[..., None] * inv_freq  # [B, T, D/2]
  sin = jnp.sin(angles)[:, :, None, :]
  cos = jnp.cos(angles)[:, :, None, :]
  x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
  out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return out.astype(x.dtype)


class Attention(nn.Module):
  cfg: ModelConfig

  @nn.compact
  def __call__(self, x, positions, kv_mask, layer_cache, cache_index, prefix_kv=None,
               segment_ids=None):
    cfg = self.cfg
    dt, pdt = cfg.compute_dtype, cfg.storage_dtype
    h, k, dh, d = cfg.n_heads, cfg.n_kv_heads, cfg.dim_per_head, cfg.d_model
    wq = _param(self, "wq", ("embed", "heads", "head_dim"), (d, h, dh), pdt)
    wk = _param(self, "wk", ("embed", "kv_heads", "head_dim"), (d, k, dh), pdt)
    wv = _param(self, "wv", ("embed", "kv_heads", "head_dim"), (d, k, dh), pdt)
    wo = _param(self, "wo", ("heads", "head_dim", "embed"), (h, dh, d), pdt)
    if cfg.fused_qkv:
      w = jnp.concatenate([wq.reshape(d, h * dh), wk.reshape(d, k * dh),
                           wv.reshape(d, k * dh)], axis=1).astype(dt)
      qkv = _matmul(x, w)
      b, t = x.shape[:2]
      q = qkv[..., :h * dh].reshape(b, t, h, dh)
      kk = qkv[..., h * dh:(h + k) * dh].reshape(b, t, k, dh)
      vv = qkv[..., (h + k) * dh:].reshape(b, t, k, dh)
    else:
      q = _project(x, wq.astype(dt))
      kk = _project(x, wk.astype(dt))
      vv = _project(x, wv.astype(dt))
    if cfg.qkv_bias:
      zeros = nn.initializers.zeros
      q = q + _param(self, "bq", ("heads", "head_dim"), (h, dh), pdt, zeros).astype(dt)
      kk = kk + _param(self, "bk", ("kv_heads", "head_dim"), (k, dh), pdt, zeros).astype(dt)
      vv = vv + _param(self, "bv", ("kv_heads", "head_dim"), (k, dh), pdt, zeros).astype(dt)
    q = rotary(q, positions, cfg.rope_theta)
    kk = rotary(kk, positions, cfg.rope_theta)

    b, t = x.shape[:2]
    if layer_cache is None:
      keys, values, new_cache = kk, vv, None
      q_slot = jnp.arange(t)[None]
    else:
      ck, cv = layer_cache
      if jnp.ndim(cache_index):  # a slot per row: rows decoding at different steps
        rows = jnp.arange(b)[:, None]
        cols = cache_index[:, None] + jnp.arange(t)[None]
        # Slots past the cache are dropped: a finished row's write goes nowhere.
        keys = ck.at[rows, cols].set(kk.astype(ck.dtype), mode="drop")
        values = cv.at[rows, cols].set(vv.astype(cv.dtype), mode="drop")
      else:
        keys = jax.lax.dynamic_update_slice(ck, kk.astype(ck.dtype), (0, cache_index, 0, 0))
        values = jax.lax.dynamic_update_slice(cv, vv.astype(cv.dtype), (0, cache_index, 0, 0))
      new_cache = (keys, values)
      q_slot = jnp.reshape(cache_index, (-1, 1)) + jnp.arange(t)[None]   # [1 or B, T]
    s = keys.shape[1]
    # A query attends to valid key slots at or before its own slot.
    causal = q_slot[:, :, None] >= jnp.arange(s)[None, None, :]         # [1 or B, T, S]
    mask = causal & kv_mask[:, None, :].astype(bool)                     # [B, T, S]
    if segment_ids is not None:  # packed rows: a token sees only its own document
      if s != t:
        raise ValueError(f"segment_ids need the keys to be the queries (got {t} queries, "
                         f"{s} key slots)")
      mask = mask & (segment_ids[:, :, None] == segment_ids[:, None, :])

    qg = q.reshape(b, t, k, h // k, dh)
    scale = 1.0 / jnp.sqrt(jnp.float32(dh))
    neg = jnp.finfo(jnp.float32).min
    if t == 1:
      # One query a row (decoding): a multiply-and-reduce streams the cache once, where
      # XLA:CPU lowers the batched einsum to many tiny matmuls.
      scores = jnp.sum(qg[:, 0, None].astype(jnp.float32) * keys[:, :, :, None, :].astype(
          jnp.float32), axis=-1) * scale                                 # [B, S, K, G]
      scores = jnp.where(mask[:, 0, :, None, None], scores, neg)
    else:
      scores = jnp.einsum("btkgd,bskd->bkgts", qg, keys.astype(dt)).astype(jnp.float32)
      scores = jnp.where(mask[:, None, None, :, :], scores * scale, neg)
    if prefix_kv is not None:
      # A prefix every row shares (few-shot exemplars), stored once: [1, P, K, D]. Its
      # scores are one matmul against all rows' queries instead of B copies of the cache.
      pk, pv = (c[0].astype(jnp.float32) for c in prefix_kv)
      pscores = jnp.einsum("btkgd,pkd->btkgp", qg.astype(jnp.float32), pk) * scale
      if t == 1:
        pscores = pscores[:, 0].transpose(0, 3, 1, 2)                    # [B, P, K, G]
        probs = jax.nn.softmax(jnp.concatenate([pscores, scores], axis=1), axis=1)
        pprobs, probs = probs[:, :pk.shape[0]], probs[:, pk.shape[0]:]
        out = jnp.einsum("bpkg,pkd->bkgd", pprobs, pv)
        out = out + jnp.sum(probs[..., None] * values[:, :, :, None, :].astype(jnp.float32),
                            axis=1)
        out = out.astype(dt).reshape(b, 1, h, dh)
      else:
        pscores = pscores.transpose(0, 2, 3, 1, 4)                       # [B, K, G, T, P]
        probs = jax.nn.softmax(jnp.concatenate([pscores, scores], axis=-1), axis=-1)
        pprobs, probs = probs[..., :pk.shape[0]], probs[..., pk.shape[0]:]
        out = (jnp.einsum("bkgtp,pkd->btkgd", pprobs, pv)
               + jnp.einsum("bkgts,bskd->btkgd", probs, values.astype(jnp.float32)))
        out = out.astype(dt).reshape(b, t, h, dh)
    elif t == 1:
      probs = jax.nn.softmax(scores, axis=1)
      out = jnp.sum(probs[..., None] * values[:, :, :, None, :].astype(jnp.float32), axis=1)
      out = out.astype(dt).reshape(b, 1, h, dh)
    else:
      probs = jax.nn.softmax(scores, axis=-1).astype(dt)
      out = jnp.einsum("bkgts,bskd->btkgd", probs, values.astype(dt)).reshape(b, t, h, dh)
    return _matmul(out.reshape(b, t, h * dh), wo.astype(dt).reshape(h * dh, d)), new_cache


class MLP(nn.Module):
  cfg: ModelConfig

  @nn.compact
  def __call__(self, x):
    cfg = self.cfg
    dt, pdt = cfg.compute_dtype, cfg.storage_dtype
    w_gate = _param(self, "w_gate", ("embed", "mlp"), (cfg.d_model, cfg.mlp_dim), pdt)
    w_up = _param(self, "w_up", ("embed", "mlp"), (cfg.d_model, cfg.mlp_dim), pdt)
    w_down = _param(self, "w_down", ("mlp", "embed"), (cfg.mlp_dim, cfg.d_model), pdt)
    if cfg.fused_mlp:
      gate, up = jnp.split(_matmul(x, jnp.concatenate([w_gate, w_up], axis=1).astype(dt)), 2,
                           axis=-1)
    else:
      gate = _matmul(x, w_gate.astype(dt))
      up = _matmul(x, w_up.astype(dt))
    hidden = nn.with_logical_constraint(jax.nn.silu(gate) * up, ("batch", "length", "mlp"))
    return _matmul(hidden, w_down.astype(dt))


class Block(nn.Module):
  cfg: ModelConfig

  @nn.compact
  def __call__(self, x, layer_cache, positions, kv_mask, cache_index, segment_ids=None,
               prefix_kv=None):
    h, new_cache = Attention(self.cfg, name="attn")(
        RMSNorm(self.cfg, name="attn_norm")(x), positions, kv_mask, layer_cache, cache_index,
        prefix_kv, segment_ids)
    x = x + h
    x = x + MLP(self.cfg, name="mlp")(RMSNorm(self.cfg, name="mlp_norm")(x))
    x = nn.with_logical_constraint(x, ("batch", "length", "embed_act"))
    return x, new_cache


class Transformer(nn.Module):
  cfg: ModelConfig

  @nn.compact
  def __call__(self, tokens, positions, kv_mask, cache: Optional[KVCache] = None,
               cache_index=0, last_only: bool = False,
               prefix: Optional[KVCache] = None, segment_ids: Optional[Array] = None,
               head_at: Optional[tuple] = None) -> Output:
    """`last_only`: heads on the last position only (a prefill needs no other logits).
    `prefix`: a [1, P] cache every row attends to before its own slots (per-layer
    models only; see sampling.generate_padded).
    `segment_ids` [B, T]: several documents packed in a row; a token attends only to its
    own document's tokens (give `positions` that restart at each document).
    `head_at`: (rows [N], columns [N]): the heads at those positions only, as [N, 1, ...]."""
    cfg = self.cfg
    dt, pdt = cfg.compute_dtype, cfg.storage_dtype
    embedding = _param(self, "embedding", ("vocab", "embed"), (cfg.vocab_size, cfg.d_model), pdt)
    x = jnp.take(embedding, tokens, axis=0).astype(dt)
    x = nn.with_logical_constraint(x, ("batch", "length", "embed_act"))

    block = Block
    if cfg.remat != "none":
      block = nn.remat(Block, policy=_REMAT_POLICIES[cfg.remat], prevent_cse=False)
    if prefix is not None and cfg.scan_layers:
      raise ValueError("a shared prefix cache needs scan_layers=False")
    if cfg.scan_layers:
      stack = nn.scan(
          block,
          variable_axes={"params": 0},
          split_rngs={"params": True},
          in_axes=(0, nn.broadcast, nn.broadcast, nn.broadcast, nn.broadcast),
          length=cfg.n_layers,
          unroll=cfg.scan_unroll or cfg.n_layers,
          metadata_params={nn.PARTITION_NAME: "layers"},
      )(cfg, name="layers")
      layer_caches = None if cache is None else (cache.k, cache.v)
      x, new_caches = stack(x, layer_caches, positions, kv_mask, cache_index, segment_ids)
    else:
      ks, vs = [], []
      for i in range(cfg.n_layers):
        layer_cache = None if cache is None else (cache.k[i], cache.v[i])
        layer_prefix = None if prefix is None else (prefix.k[i], prefix.v[i])
        x, c = block(cfg, name=f"layer_{i}")(x, layer_cache, positions, kv_mask, cache_index,
                                             segment_ids, layer_prefix)
        if c is not None:
          ks.append(c[0])
          vs.append(c[1])
      new_caches = (tuple(ks), tuple(vs))
    if last_only:
      x = x[:, -1:]
    if head_at is not None:  # (rows, columns): heads at these positions only, [N, 1, ...]
      x = x[head_at[0], head_at[1]][:, None]
    x = RMSNorm(cfg, name="final_norm")(x)

    logits = scalars = None
    if cfg.lm_head:
      if cfg.tie_embeddings:
        # x @ E^T as a contraction on E's own layout: no transposed copy of the table.
        b, t, d = x.shape
        logits = jax.lax.dot_general(x.reshape(b * t, d), embedding.astype(dt),
                                     (((1,), (1,)), ((), ()))).reshape(b, t, -1)
        logits = logits.astype(jnp.float32)
      else:
        w = _param(self, "lm_head", ("embed", "vocab"), (cfg.d_model, cfg.vocab_size), pdt)
        logits = _matmul(x, w.astype(dt)).astype(jnp.float32)
    if cfg.scalar_head:
      w = _param(self, "scalar_head", ("embed",), (cfg.d_model,), pdt)
      bias = _param(self, "scalar_bias", (), (), pdt, nn.initializers.zeros)
      scalars = (jnp.einsum("btd,d->bt", x.astype(jnp.float32), w.astype(jnp.float32))
                 + bias.astype(jnp.float32))
    new_cache = None if cache is None else KVCache(*new_caches)
    return Output(logits, scalars, new_cache)


def unstack_layers(params: Any, n_layers: int) -> Any:
  """Scanned params (stacked under "layers") → per-layer params ("layer_<i>"), the layout
  of the same model with scan_layers=False."""
  out = {k: v for k, v in params.items() if k != "layers"}
  for i in range(n_layers):
    out[f"layer_{i}"] = jax.tree.map(lambda x: x[i], params["layers"])
  return out


def default_positions(mask: Array) -> Array:
  """Rotary positions for a left- or right-padded batch: count of real tokens before."""
  return jnp.maximum(jnp.cumsum(mask.astype(jnp.int32), axis=-1) - 1, 0)


def forward(model: Transformer, params: Any, tokens: Array, mask: Array) -> Output:
  """A plain (no-cache) forward pass over a padded batch."""
  return model.apply({"params": params}, tokens, default_positions(mask), mask)
