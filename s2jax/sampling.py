"""Batched generation: jitted prefill, then a `lax.while_loop` decode over a KV cache.

Prompts of different lengths are left-padded to a prompt-length bucket, so a new length
reuses a compiled program; each row's rotary positions count only its real tokens. The
cache holds bucket + max_new_tokens slots. Decoding stops per row at end-of-sequence or
at any configured stop token (e.g. the end-of-step newline, to generate one reasoning
step at a time) and the loop ends when every row has stopped.

A large job (`Sampler.generate_all`) refills instead: each row decodes at its own step,
and a row that finishes takes the next waiting prompt, so the batch stays full whatever
the spread of lengths. Row b draws its token t with fold_in(key of its prompt, t), so a
prompt's sample is the same in any batch, refilled or not.

Returned log-probabilities are those of the chosen tokens under the model's own
(temperature 1, unfiltered) distribution, which is what likelihood ratios in RL need.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from s2jax.data import packing
from s2jax.metrics import progress
from s2jax.models.transformer import KVCache, ModelConfig, Transformer, unstack_layers
from s2jax.sharding import row_shards, to_global, to_host

# Powers of two, with midpoints above 128 (a prompt pads by at most a third).
DEFAULT_BUCKETS = (16, 32, 64, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096)


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
  """How the next token is chosen. temperature 0 means greedy."""
  temperature: float = 0.0
  top_k: int = 0      # 0: no top-k filter
  top_p: float = 1.0  # 1: no nucleus filter

  def __post_init__(self):
    if self.temperature < 0:
      raise ValueError(f"sampling: temperature={self.temperature} must be >= 0")
    if self.top_k < 0:
      raise ValueError(f"sampling: top_k={self.top_k} must be >= 0")
    if not 0 < self.top_p <= 1:
      raise ValueError(f"sampling: top_p={self.top_p} must be in (0, 1]")

  @property
  def greedy(self) -> bool:
    return self.temperature == 0


def filter_logits(logits: jax.Array, cfg: SamplingConfig) -> jax.Array:
  """Temperature, top-k and top-p applied to fp32 logits [..., V]; removed entries -inf."""
  logits = logits / cfg.temperature
  neg = jnp.finfo(logits.dtype).min
  if cfg.top_k:
    kth = jax.lax.top_k(logits, cfg.top_k)[0][..., -1:]
    logits = jnp.where(logits < kth, neg, logits)
  if cfg.top_p < 1.0:
    sorted_logits = jnp.sort(logits, axis=-1)[..., ::-1]
    probs = jax.nn.softmax(sorted_logits, axis=-1)
    # Keep the smallest prefix whose mass reaches top_p (the token crossing it included).
    mass_before = jnp.cumsum(probs, axis=-1) - probs
    cutoff_idx = jnp.sum(mass_before < cfg.top_p, axis=-1, keepdims=True) - 1
    cutoff = jnp.take_along_axis(sorted_logits, cutoff_idx, axis=-1)
    logits = jnp.where(logits < cutoff, neg, logits)
  return logits


def choose_tokens(logits: jax.Array, keys: jax.Array, cfg: SamplingConfig) -> jax.Array:
  """logits [B, V], one PRNG key per row [B]: a row's choice depends on its key alone."""
  if cfg.greedy:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  return jax.vmap(jax.random.categorical)(keys, filter_logits(logits, cfg)).astype(jnp.int32)


class PackedPrompts(NamedTuple):
  """A batch's prompts packed for prefill (see s2jax.data.packing), and where each
  left-padded cache slot of the decode batch finds its key and value in the packed rows."""
  tokens: jax.Array     # [R, P] packed prompts
  positions: jax.Array  # [R, P] position within its prompt
  segments: jax.Array   # [R, P] prompt index + 1, 0 for padding
  gather: jax.Array     # [B, P] flat packed index of left-padded slot j of row b (0: pad)
  last: jax.Array       # [B] flat packed index of each prompt's last token


def pack_prompts(prompts: Sequence[Sequence[int]], padded_width: int, pack_width: int,
                 pad_id: int, rows_multiple: int = 1) -> PackedPrompts:
  """Prompts packed into rows of `pack_width`, to be laid out left-padded to
  `padded_width` for decoding."""
  packed = packing.pack(prompts, pack_width, pad_id, rows_multiple)
  gather = np.zeros((len(prompts), padded_width), np.int32)
  last = np.zeros((len(prompts),), np.int32)
  for i, prompt in enumerate(prompts):
    start = packed.row[i] * pack_width + packed.offset[i]
    gather[i, padded_width - len(prompt):] = start + np.arange(len(prompt))
    last[i] = start + len(prompt) - 1
  return PackedPrompts(packed.tokens, packed.positions, packed.segments, gather, last)


class Generation(NamedTuple):
  tokens: np.ndarray     # [B, max_new_tokens] generated ids, pad after each row's end
  logprobs: np.ndarray   # [B, max_new_tokens] log p(token), 0 after the end
  lengths: np.ndarray    # [B] number of generated tokens, the stop token included
  stopped: np.ndarray    # [B] whether the row ended on eos or a stop token
  tool_mask: np.ndarray  # [B, max_new_tokens] whether the calculator wrote the token


def bucket_for(length: int, buckets: Sequence[int]) -> int:
  for b in buckets:
    if b >= length:
      return b
  raise ValueError(f"prompt of {length} tokens is longer than the largest prompt bucket "
                   f"({max(buckets)})")


def common_prefix(prompts: Sequence[Sequence[int]]) -> int:
  """How many leading tokens every prompt shares, leaving each at least one of its own."""
  n = min(len(p) for p in prompts) - 1
  first = prompts[0]
  for p in prompts[1:]:
    n = next((i for i in range(n) if p[i] != first[i]), n)
  return max(n, 0)


def left_pad(prompts: Sequence[Sequence[int]], length: int, pad_id: int):
  tokens = np.full((len(prompts), length), pad_id, np.int32)
  mask = np.zeros((len(prompts), length), bool)
  for i, p in enumerate(prompts):
    if len(p):
      tokens[i, length - len(p):] = p
      mask[i, length - len(p):] = True
  return tokens, mask


def _calculator_step(calc, chars, s, tok, done):
  """Follow each live row's characters through `tok`; on `<<expr=` ask the host (once for
  all rows that closed an expression this step) for the tokens the tool writes."""
  from s2jax import calculator as calc_lib
  b = tok.shape[0]
  codes = jnp.where(done[:, None], 0, chars[tok])  # [B, W]
  slots = jnp.arange(calc_lib.MAX_EXPR)[None, :]

  def one_char(j, st):
    mode, prev, buf, blen, trig = st
    c = codes[:, j]
    live = c > 0
    opened = live & (mode == 0) & (prev == ord("<")) & (c == ord("<"))
    in_expr = live & (mode == 1)
    closed = in_expr & (c == ord("="))
    aborted = in_expr & ((c == ord(">")) | (c == ord("<")) | (c == ord("\n")))
    append = in_expr & ~closed & ~aborted
    buf = jnp.where(append[:, None] & (slots == blen[:, None]), c[:, None], buf)
    blen = jnp.where(opened, 0, blen + append.astype(jnp.int32))
    mode = jnp.where(opened, 1, jnp.where(closed | aborted, 0, mode))
    prev = jnp.where(opened, 0, jnp.where(live, c, prev))  # "<<<" opens once
    return mode, prev, buf, blen, trig | closed

  mode, prev, buf, blen, trig = jax.lax.fori_loop(
      0, codes.shape[1], one_char,
      (s["calc_mode"], s["calc_prev"], s["calc_buf"], s["calc_len"], jnp.zeros((b,), bool)))
  shapes = (jax.ShapeDtypeStruct((b, calc_lib.MAX_FORCED), jnp.int32),
            jax.ShapeDtypeStruct((b,), jnp.int32))
  forced, count = jax.lax.cond(
      jnp.any(trig),
      lambda: jax.pure_callback(calc.callback, shapes, buf, blen, trig),
      lambda: (jnp.zeros(shapes[0].shape, jnp.int32), jnp.zeros((b,), jnp.int32)))
  return dict(calc_mode=mode, calc_prev=prev, calc_buf=buf, calc_len=blen,
              queue=jnp.where(trig[:, None], forced, s["queue"]),
              queue_len=jnp.where(trig, count, s["queue_len"]),
              queue_pos=jnp.where(trig, 0, s["queue_pos"]))


def _decode_layout(model: Transformer, params: Any):
  """Decode with per-layer weights and caches (see ModelConfig.scan_layers): unstacked
  once, outside the loop, instead of sliced out of the stack at every token."""
  if not model.cfg.scan_layers:
    return model, params
  return (Transformer(dataclasses.replace(model.cfg, scan_layers=False)),
          unstack_layers(params, model.cfg.n_layers))


def _shared_prefix(model: Transformer, params: Any, prefix: Optional[jax.Array]):
  """The [1, P0] cache of tokens every prompt starts with (few-shot exemplars), prefilled
  once; every row attends to it before its own slots, so decoding never reads B copies."""
  if prefix is None:
    return None
  p0 = prefix.shape[0]
  return model.apply({"params": params}, prefix[None], jnp.arange(p0)[None],
                     jnp.ones((1, p0), bool), KVCache.zeros(model.cfg, 1, p0), 0,
                     last_only=True).cache


def _pick(logits, row_keys, t, sampling: SamplingConfig):
  """Row b's token number t[b] is drawn with fold_in(row_keys[b], t[b]): the same prompt
  with the same key gives the same sample in any batch, at any row, refilled or not."""
  keys = jax.vmap(jax.random.fold_in)(jax.random.wrap_key_data(row_keys), t)
  tok = choose_tokens(logits, keys, sampling)
  lp = jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), tok[:, None], axis=-1)[:, 0]
  return tok, lp


def _prefill_rows(model, params, shared, prompts: PackedPrompts, mask, row_keys, *,
                  extra: int, max_new_tokens: int, sampling: SamplingConfig, pad_id: int,
                  calculator) -> dict:
  """Prefill prompts packed (no compute on padding), lay their keys and values out
  left-padded, one row each ([B, P + extra], valid slots `mask`), and give each row its
  first token: a fresh decode state for these rows."""
  p0 = 0 if shared is None else shared.k[0].shape[1]
  r, w = prompts.tokens.shape
  out = model.apply({"params": params}, prompts.tokens, p0 + prompts.positions,
                    prompts.segments > 0, KVCache.zeros(model.cfg, r, w), 0, prefix=shared,
                    segment_ids=prompts.segments, head_at=(prompts.last // w, prompts.last % w))

  def unpack(c):  # packed [R, W, K, D] → left-padded rows [B, P + extra, K, D]
    rows = c.reshape(r * w, *c.shape[2:])[prompts.gather]
    return jnp.pad(rows, [(0, 0), (0, extra)] + [(0, 0)] * (rows.ndim - 2))

  b = mask.shape[0]
  tok, lp = _pick(out.logits[:, -1], row_keys, jnp.zeros((b,), jnp.int32), sampling)
  return dict(cache=jax.tree.map(unpack, out.cache),
              kv_mask=jnp.concatenate([mask, jnp.zeros((b, extra), bool)], axis=1),
              pos=p0 + jnp.sum(mask, axis=1).astype(jnp.int32), row_keys=row_keys, tok=tok,
              lp=lp, **_start_of_row(b, max_new_tokens, pad_id, calculator))


def _start_of_row(b: int, max_new_tokens: int, pad_id: int, calculator) -> dict:
  """The decode state's fields that every row starts from, whatever its prompt. Each a
  buffer of its own, since the refill kernels donate the state."""
  zeros = lambda *shape, dtype=jnp.int32: jnp.zeros((b, *shape), dtype)
  state = dict(done=zeros(dtype=bool), lengths=zeros(),
               out_tokens=jnp.full((b, max_new_tokens), pad_id, jnp.int32),
               out_lps=zeros(max_new_tokens, dtype=jnp.float32), forced=zeros(dtype=bool),
               out_tool=zeros(max_new_tokens, dtype=bool))
  if calculator is not None:
    from s2jax import calculator as calc_lib
    state.update(calc_mode=zeros(), calc_prev=zeros(), calc_buf=zeros(calc_lib.MAX_EXPR),
                 calc_len=zeros(), queue=zeros(calc_lib.MAX_FORCED), queue_len=zeros(),
                 queue_pos=zeros())
  return state


def _decode_step(model, params, shared, *, p: int, max_new_tokens: int,
                 sampling: SamplingConfig, stop_ids: tuple, pad_id: int, calculator):
  """One token for every live row (not stopped, budget not spent): record the token chosen
  last step, feed it at the row's own slot p + lengths, choose the next. Rows may be at
  different steps (refilled rows start again at 0)."""
  stops = jnp.asarray(stop_ids, jnp.int32)
  chars = None if calculator is None else jnp.asarray(calculator.chars)

  def body(s):
    tok, done, lengths = s["tok"], s["done"], s["lengths"]
    b = tok.shape[0]
    rows = jnp.arange(b)
    live = ~done & (lengths < max_new_tokens)
    col = jnp.where(live, lengths, max_new_tokens)  # past the end: the write is dropped
    out_tokens = s["out_tokens"].at[rows, col].set(tok, mode="drop")
    out_lps = s["out_lps"].at[rows, col].set(s["lp"], mode="drop")
    out_tool = s["out_tool"].at[rows, col].set(s["forced"], mode="drop")
    calc = {} if calculator is None else _calculator_step(calculator, chars, s, tok, ~live)
    done = done | (live & jnp.isin(tok, stops))
    slot = p + lengths
    kv_mask = s["kv_mask"].at[rows, slot].set(live, mode="drop")
    out = model.apply({"params": params}, tok[:, None], s["pos"][:, None], kv_mask,
                      s["cache"], slot, prefix=shared)
    lengths = lengths + live.astype(jnp.int32)
    logits = out.logits[:, -1]
    new_tok, new_lp = _pick(logits, s["row_keys"], lengths, sampling)
    forced = jnp.zeros((b,), bool)
    if calculator is not None:  # the tool's next token replaces the model's choice
      forced = calc["queue_pos"] < calc["queue_len"]
      tool_tok = jnp.take_along_axis(
          calc["queue"], jnp.minimum(calc["queue_pos"], calc["queue"].shape[1] - 1)[:, None],
          axis=1)[:, 0]
      tool_lp = jnp.take_along_axis(jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1),
                                    tool_tok[:, None], axis=-1)[:, 0]
      new_tok = jnp.where(forced, tool_tok, new_tok)
      new_lp = jnp.where(forced, tool_lp, new_lp)
      calc["queue_pos"] = calc["queue_pos"] + forced.astype(jnp.int32)
    return dict(s, steps=s["steps"] + 1, cache=out.cache, kv_mask=kv_mask,
                pos=s["pos"] + live.astype(jnp.int32),
                tok=new_tok, lp=new_lp, done=done, lengths=lengths, out_tokens=out_tokens,
                out_lps=out_lps, forced=forced, out_tool=out_tool, **calc)
  return body


def _finished(s, max_new_tokens):
  return s["done"] | (s["lengths"] >= max_new_tokens)


_KERNEL_STATICS = ("model", "max_new_tokens", "sampling", "stop_ids", "pad_id", "calculator")


@functools.partial(jax.jit, static_argnames=_KERNEL_STATICS + ("decode_chunk",))
def generate_padded(model: Transformer, params: Any, prompts: PackedPrompts, mask: jax.Array,
                    row_keys: jax.Array, *, max_new_tokens: int, sampling: SamplingConfig,
                    stop_ids: tuple, pad_id: int, prefix: Optional[jax.Array] = None,
                    calculator=None, decode_chunk: int = 64):
  """The jitted kernel: prompts → generated tokens [B, max_new_tokens].

  The prompts are prefilled packed (`prompts`), then decoded left-padded, one row each
  ([B, P], valid slots `mask`). `row_keys` [B, 2]: each row's PRNG key data.
  `prefix` [P0]: tokens every prompt starts with (few-shot exemplars), prefilled once and
  shared by every row; `prompts` are then the rest of each prompt.
  `calculator` (s2jax.calculator.Calculator): after a row writes `<<expr=`, the value of
  expr and `>>` are written for it (tool tokens are flagged in the last output).
  `decode_chunk`: the cache grows by this many slots at a time, so a decoded token attends
  over the slots filled so far plus at most one chunk, not over the whole budget."""
  model, params = _decode_layout(model, params)
  shared = _shared_prefix(model, params, prefix)
  chunk = min(decode_chunk, max_new_tokens)
  statics = dict(max_new_tokens=max_new_tokens, sampling=sampling, pad_id=pad_id,
                 calculator=calculator)
  state = _prefill_rows(model, params, shared, prompts, mask, row_keys, extra=chunk, **statics)
  state["steps"] = jnp.int32(0)
  body = _decode_step(model, params, shared, p=mask.shape[1], stop_ids=stop_ids, **statics)

  # One while loop per chunk of the budget, each over a cache `chunk` slots longer than
  # the last: the copy that grows it is paid once a chunk, the shorter reads every token.
  for end in range(chunk, max_new_tokens + chunk, chunk):
    if end > chunk:
      state = _with_slots(state, state["kv_mask"].shape[1] + chunk)
    def more(s, end=min(end, max_new_tokens)):  # a live row whose next slot is in the cache
      live = ~_finished(s, max_new_tokens)
      return jnp.any(live) & (jnp.max(jnp.where(live, s["lengths"], 0)) < end)
    state = jax.lax.while_loop(more, body, state)
  return (state["out_tokens"], state["out_lps"], state["lengths"], state["done"],
          state["out_tool"])


@functools.partial(jax.jit, static_argnames=_KERNEL_STATICS, donate_argnames=("state",))
def refill_rows(model: Transformer, params: Any, shared, state: dict, rows: jax.Array,
                prompts: PackedPrompts, mask: jax.Array, row_keys: jax.Array,
                active: jax.Array, *, max_new_tokens: int, sampling: SamplingConfig,
                stop_ids: tuple, pad_id: int, calculator=None) -> dict:
  """Start new prompts in decode-state rows `rows` [F] (`model`, `params` in decode layout,
  see generate_refilled). Rows whose `active` is False start finished (batch filler)."""
  del stop_ids
  fresh = _prefill_rows(model, params, shared, prompts, mask, row_keys, extra=0,
                        max_new_tokens=max_new_tokens, sampling=sampling, pad_id=pad_id,
                        calculator=calculator)
  fresh["done"] = ~active
  p = mask.shape[1]
  out = dict(state, **{k: state[k].at[rows].set(v) for k, v in fresh.items()
                       if k not in ("cache", "kv_mask")})
  out["kv_mask"] = state["kv_mask"].at[rows].set(
      jnp.pad(fresh["kv_mask"], [(0, 0), (0, state["kv_mask"].shape[1] - p)]))
  out["cache"] = jax.tree.map(lambda c, f: c.at[rows, :p].set(f), state["cache"], fresh["cache"])
  return out


@functools.partial(jax.jit, static_argnames=_KERNEL_STATICS + ("prompt_width",),
                   donate_argnames=("state",))
def decode_until(model: Transformer, params: Any, shared, state: dict, finished: jax.Array, *,
                 prompt_width: int, max_new_tokens: int, sampling: SamplingConfig,
                 stop_ids: tuple, pad_id: int, calculator=None) -> dict:
  """Decode until at least `finished` rows have stopped or spent the budget, or a live
  row's next slot is past the cache (which holds `prompt_width` + room slots; the host
  then grows it, see resize_room)."""
  p, room = prompt_width, state["kv_mask"].shape[1] - prompt_width
  body = _decode_step(model, params, shared, p=p, max_new_tokens=max_new_tokens,
                      sampling=sampling, stop_ids=stop_ids, pad_id=pad_id, calculator=calculator)

  def more(s):
    finished_now = _finished(s, max_new_tokens)
    longest = jnp.max(jnp.where(finished_now, 0, s["lengths"]))
    return (jnp.sum(finished_now) < finished) & (longest < room)
  return jax.lax.while_loop(more, body, state)


def _with_slots(state: dict, length: int) -> dict:
  """The decode state with its cache and kv_mask cut or padded (empty slots) to `length`."""
  def fit(x):
    if x.shape[1] >= length:
      return x[:, :length]
    return jnp.pad(x, [(0, 0), (0, length - x.shape[1])] + [(0, 0)] * (x.ndim - 2))
  return dict(state, cache=jax.tree.map(fit, state["cache"]), kv_mask=fit(state["kv_mask"]))


@functools.partial(jax.jit, static_argnames=("length",))
def _resize_slots(cache, kv_mask, *, length: int):
  out = _with_slots(dict(cache=cache, kv_mask=kv_mask), length)
  return out["cache"], out["kv_mask"]


def resize_room(state: dict, length: int) -> dict:
  """The decode state with its cache cut or padded to `length` slots: refilled rows are at
  different steps, and a token attends over every slot, so the cache follows the longest
  live row instead of holding the whole budget."""
  cache, kv_mask = _resize_slots(state["cache"], state["kv_mask"], length=length)
  return dict(state, cache=cache, kv_mask=kv_mask)


_shared_prefix_jit = jax.jit(_shared_prefix, static_argnums=0)


def empty_state(model: Transformer, batch: int, prompt_width: int, room: int,
                pad_id: int, calculator=None, *, max_new_tokens: int) -> dict:
  """A decode state of `batch` finished rows, to refill (see refill_rows), with cache
  slots for prompts of `prompt_width` and `room` decoded tokens."""
  b, length = batch, prompt_width + room
  return dict(_start_of_row(b, max_new_tokens, pad_id, calculator),
              cache=KVCache.zeros(model.cfg, b, length), kv_mask=jnp.zeros((b, length), bool),
              pos=jnp.zeros((b,), jnp.int32), row_keys=jnp.zeros((b, 2), jnp.uint32),
              tok=jnp.zeros((b,), jnp.int32), lp=jnp.zeros((b,), jnp.float32),
              done=jnp.ones((b,), bool), steps=jnp.int32(0))


class Sampler:
  """Host-side wrapper: bucketing, padding, validation, and the jitted kernel."""

  def __init__(self, model: Transformer, *, pad_id: int, eos_id: int,
               max_cache_len: int = 1024, buckets: Sequence[int] = DEFAULT_BUCKETS,
               calculator=None, decode_chunk: int = 64, pack_width: Optional[int] = None,
               refill: bool = True, shared_prefix_min: int = 16):
    """`calculator`: an s2jax.calculator.Calculator to write `<<expr=value>>` values.
    `decode_chunk`: see generate_padded. `pack_width`: prompts are prefilled packed into
    rows this wide (or the prompt bucket, if wider), several short prompts to a row; by
    default rows of the bucket's width: a wider row costs attention (quadratic in its
    width) that outweighs the rows it saves on small models (bench_sampler's refill).
    `refill`: generate_all starts a waiting prompt in each row that finishes, instead of
    running every batch until its longest row stops.
    `shared_prefix_min`: when a call's prompts all start with at least this many equal
    tokens (a chat template's system turn, an instruction) and no `prefix` is given, those
    tokens, rounded down to a multiple of it, are prefilled once and shared by every row,
    as an explicit `prefix` is (0: never)."""
    if decode_chunk <= 0:
      raise ValueError(f"sampler: decode_chunk={decode_chunk} must be positive")
    if pack_width is not None and pack_width <= 0:
      raise ValueError(f"sampler: pack_width={pack_width} must be positive")
    if shared_prefix_min < 0:
      raise ValueError(f"sampler: shared_prefix_min={shared_prefix_min} must be >= 0")
    self.pack_width = pack_width
    self.refill = refill
    self.shared_prefix_min = shared_prefix_min
    self.decode_steps = 0  # decode iterations run so far (each one token for every row)
    self.model = model
    self.decode_chunk = decode_chunk
    self.calculator = calculator
    self.pad_id, self.eos_id = pad_id, eos_id
    self.max_cache_len = max_cache_len
    self.buckets = tuple(sorted(b for b in buckets if b <= max_cache_len)) or (max_cache_len,)

  def prompt_length(self, prompts: Sequence[Sequence[int]], max_new_tokens: int,
                    prefix_len: int = 0) -> int:
    """The left-padded prompt width P these prompts are generated at (their bucket)."""
    longest = max(len(p) for p in prompts)
    if longest == 0:
      raise ValueError("sampler: every prompt is empty; a prompt needs at least one token")
    room = self.max_cache_len - max_new_tokens - prefix_len
    if longest > room:
      raise ValueError(f"sampler: prompt of {longest + prefix_len} tokens plus max_new_tokens="
                       f"{max_new_tokens} exceeds the cache length {self.max_cache_len}")
    # The room the cache leaves is the last bucket: a prompt past the largest bucket that
    # still fits (beam search grows prompts step by step) costs one more shape, not a failure.
    return min(bucket_for(longest, self.buckets + (room,)), room)

  def __call__(self, params, prompts: Sequence[Sequence[int]], *, max_new_tokens: int,
               rng: Optional[jax.Array] = None, sampling: SamplingConfig = SamplingConfig(),
               stop_ids: Sequence[int] = (), batch_sharding=None,
               prefix: Sequence[int] = (), row_keys: Optional[jax.Array] = None) -> Generation:
    """`prefix`: tokens that precede every prompt, computed once (see generate_padded).
    `row_keys` [B]: each row's PRNG key (or its key data [B, 2]); default fold_in(rng, row)."""
    if not len(prompts):
      raise ValueError("sampler: no prompts given")
    if max_new_tokens <= 0:
      raise ValueError(f"sampler: max_new_tokens={max_new_tokens} must be positive")
    prefix, prompts = self._split_prefix(prefix, prompts)
    p = self.prompt_length(prompts, max_new_tokens, len(prefix))
    shards = 1 if batch_sharding is None else row_shards(batch_sharding)
    # Packed rows are counted in steps of an eighth of the batch: a few shapes serve all.
    packed, mask = self._pack(prompts, p, batch_sharding,
                              math.lcm(max(1, len(prompts) // 8), shards))
    if row_keys is None:
      rng = jax.random.key(0) if rng is None else rng
      row_keys = jax.vmap(jax.random.fold_in, (None, 0))(rng, jnp.arange(len(prompts)))
    if jax.dtypes.issubdtype(row_keys.dtype, jax.dtypes.prng_key):
      row_keys = jax.random.key_data(row_keys)
    row_keys = np.asarray(row_keys)
    if batch_sharding is not None:
      row_keys = to_global(row_keys, batch_sharding)
    stops = tuple(sorted({self.eos_id, *map(int, stop_ids)}))
    out = generate_padded(self.model, params, packed, mask, row_keys, max_new_tokens=max_new_tokens,
                          sampling=sampling, stop_ids=stops, pad_id=self.pad_id,
                          prefix=jnp.asarray(prefix, jnp.int32) if len(prefix) else None,
                          calculator=self.calculator, decode_chunk=self.decode_chunk)
    gen = Generation(*(to_host(x) for x in out))
    self.decode_steps += int(gen.lengths.max())
    return gen

  def _split_prefix(self, prefix, prompts):
    """(prefix, prompts): the given prefix, or the tokens every prompt starts with, in
    whole multiples of shared_prefix_min (none if fewer; see __init__)."""
    if len(prefix) or not self.shared_prefix_min or len(prompts) < 2:
      return prefix, prompts
    # In whole multiples of shared_prefix_min: the prefix length is a compiled shape, and
    # batches whose questions happen to share a first word should not compile again.
    n = common_prefix(prompts) // self.shared_prefix_min * self.shared_prefix_min
    if not n:
      return prefix, prompts
    return list(prompts[0][:n]), [p[n:] for p in prompts]

  def _pack(self, prompts, p, batch_sharding, rows_multiple):
    """Prompts packed for prefill at prompt width p, and their left-padded mask."""
    _, mask = left_pad(prompts, p, self.pad_id)
    # Rows of pack_width, unless the prompts fill fewer bucket-wide rows (batch 1: one).
    total = sum(len(x) for x in prompts)
    width = p if self.pack_width is None else max(p, min(self.pack_width, -(-total // p) * p))
    packed = pack_prompts(prompts, p, width, self.pad_id, rows_multiple)
    if batch_sharding is not None:
      mask = to_global(mask, batch_sharding)
      packed = PackedPrompts(*(to_global(x, batch_sharding) for x in packed))
    return packed, mask

  def generate_all(self, params, prompts: Sequence[Sequence[int]], *, batch_size: int,
                   max_new_tokens: int, rng: Optional[jax.Array] = None,
                   sampling: SamplingConfig = SamplingConfig(), stop_ids: Sequence[int] = (),
                   batch_sharding=None, desc: str = "", prefix: Sequence[int] = (),
                   refill: Optional[bool] = None) -> list:
    """Any number of prompts, `batch_size` rows at a time → one `(ids, stopped)` per prompt.

    Prompt i samples with the key fold_in(rng, i), so its output does not depend on the
    batching. With `refill` (default: the sampler's), a row that finishes takes the next
    waiting prompt (see _generate_refilled); without it, prompts run in fixed batches,
    sorted by length (less left padding, fewer buckets), the last filled with copies so
    that one compiled shape serves every batch."""
    if not len(prompts):
      return []
    prefix, prompts = self._split_prefix(prefix, prompts)
    rng = jax.random.key(0) if rng is None else rng
    keys = np.asarray(jax.random.key_data(
        jax.vmap(jax.random.fold_in, (None, 0))(rng, jnp.arange(len(prompts)))))
    bar = progress(len(prompts), desc=desc) if desc else None
    run = self._generate_refilled if (self.refill if refill is None else refill) else \
        self._generate_batches
    out = run(params, prompts, keys, batch_size=batch_size, max_new_tokens=max_new_tokens,
              sampling=sampling, stop_ids=stop_ids, batch_sharding=batch_sharding,
              prefix=prefix, done=(lambda n: bar.update(n)) if bar is not None else None)
    if bar is not None:
      bar.close()
    return out

  def _generate_batches(self, params, prompts, keys, *, batch_size, done, **kw) -> list:
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out = [None] * len(prompts)
    for start in range(0, len(order), batch_size):
      idx = order[start:start + batch_size]
      rows = idx + [idx[-1]] * (batch_size - len(idx))
      gen = self(params, [prompts[i] for i in rows], row_keys=keys[rows], **kw)
      for j, i in enumerate(idx):
        out[i] = (gen.tokens[j, :gen.lengths[j]].tolist(), bool(gen.stopped[j]))
      if done is not None:
        done(len(idx))
    return out

  def _generate_refilled(self, params, prompts, keys, *, batch_size, max_new_tokens, sampling,
                         stop_ids, batch_sharding, prefix, done) -> list:
    """Decode `batch_size` rows until about an eighth have finished, start waiting prompts
    in those rows (a packed prefill written into their cache rows), and repeat: the batch
    stays full however unequal the lengths. Rows are at different steps; the cache holds
    the longest live row's slots, in whole `decode_chunk`s (resize_room), since every
    token attends over all of them. A row's tokens are those of a batch of its own.

    Prompts run by prompt-length bucket, shortest first, each bucket a refilled job of its
    own: every row pays for the bucket's width in cache slots at every step. A bucket with
    fewer prompts than rows joins the next one."""
    shards = 1 if batch_sharding is None else row_shards(batch_sharding)
    if batch_size % shards:
      raise ValueError(f"sampler: batch_size={batch_size} must be a multiple of the "
                       f"{shards} data shards")
    # Rows refilled at a time: about an eighth of the batch, a whole number a shard, and
    # dividing the batch.
    per_shard = batch_size // shards
    group = shards * max(d for d in range(1, max(1, per_shard // 8) + 1) if per_shard % d == 0)
    self.prompt_length(prompts, max_new_tokens, len(prefix))  # every prompt fits
    chunk = min(self.decode_chunk, max_new_tokens)
    model, flat = _decode_layout(self.model, params)
    shared = _shared_prefix_jit(model, flat,
                                jnp.asarray(prefix, jnp.int32) if len(prefix) else None)
    statics = dict(max_new_tokens=max_new_tokens, sampling=sampling, pad_id=self.pad_id,
                   stop_ids=tuple(sorted({self.eos_id, *map(int, stop_ids)})),
                   calculator=self.calculator)
    place = (lambda x: x) if batch_sharding is None else (lambda x: to_global(x, batch_sharding))
    width = lambda i: self.prompt_length([prompts[i]], max_new_tokens, len(prefix))
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out = [None] * len(prompts)
    job = []
    for n, i in enumerate(order):
      job.append(i)
      if n + 1 < len(order) and (len(job) < batch_size or width(order[n + 1]) == width(i)):
        continue
      p = width(i)  # the job's widest prompt
      room = chunk  # decode slots the cache holds now
      state = empty_state(model, batch_size, p, room, self.pad_id, self.calculator,
                          max_new_tokens=max_new_tokens)
      if batch_sharding is not None:
        state = jax.tree.map(lambda x: place(np.asarray(x)) if x.ndim else x, state)
      owner = np.full(batch_size, -1)   # the prompt each row is generating, -1: none
      waiting = job[::-1]
      job = []
      while True:
        free = np.flatnonzero(owner < 0)
        while waiting and len(free) >= group:
          take = [waiting.pop() for _ in range(min(group, len(waiting)))]
          rows, take_rows = free[:group], take + [take[-1]] * (group - len(take))
          packed, mask = self._pack([prompts[i] for i in take_rows], p, batch_sharding, shards)
          state = refill_rows(model, flat, shared, state, jnp.asarray(rows), packed, mask,
                              place(keys[take_rows]), jnp.arange(group) < len(take), **statics)
          owner[rows[:len(take)]] = take
          free = free[group:]
        if not (owner >= 0).any():
          self.decode_steps += int(to_host(state["steps"]))
          break
        # Wait for a refill's worth of rows (all of them once nothing waits).
        state = decode_until(model, flat, shared, state,
                             jnp.int32(group if waiting else batch_size), prompt_width=p,
                             **statics)
        all_lengths, all_stopped = to_host(state["lengths"]), to_host(state["done"])
        finished = all_stopped | (all_lengths >= max_new_tokens)
        rows = np.flatnonzero(finished & (owner >= 0))
        lengths, stopped = all_lengths[rows], all_stopped[rows]
        tokens = to_host(state["out_tokens"])[rows]
        for j, row in enumerate(rows):
          out[owner[row]] = (tokens[j, :lengths[j]].tolist(), bool(stopped[j]))
        owner[rows] = -1
        if done is not None:
          done(len(rows))
        # Room for every live row's next token, in whole chunks.
        live = (owner >= 0) & ~finished
        longest = int(all_lengths[live].max()) if live.any() else 0
        fits = min(max_new_tokens, -(-(longest + 1) // chunk) * chunk)
        if fits != room:
          room = fits
          state = resize_room(state, p + room)
    return out
