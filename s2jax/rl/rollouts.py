"""Rollouts on the host side: sampled responses in the update's layout, and the steps of
a response with the token where each ends (where a step reward goes)."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from s2jax.data import packing
from s2jax.sampling import Sampler, SamplingConfig, left_pad


def response_widths(max_new_tokens: int, n: int = 3, multiple: int = 32) -> tuple:
  """The few response widths the update is compiled for: the budget, its half, its
  quarter, ... (`n` of them), each rounded up to `multiple`."""
  return tuple(sorted({min(max_new_tokens, -(-max_new_tokens // 2 ** k // multiple) * multiple)
                       for k in range(n)}))


def update_widths(max_new_tokens: int, count: int, packed: bool) -> tuple:
  """The response widths of an RL run (`rollout.response_widths` = `count`; 0 picks): one
  when the update is packed, whose rows hold no empty response slot, so that the widest
  costs the transformer nothing and only the prompt bucket and the row count change the
  update's shape; three otherwise, so that short batches are not padded to the budget."""
  if count < 0:
    raise ValueError(f"rollout.response_widths={count} must be >= 0 (0: chosen by rl.pack)")
  return response_widths(max_new_tokens, n=count or (1 if packed else 3))


def rollout(sampler: Sampler, params, prompts: Sequence[Sequence[int]], *, max_new_tokens: int,
            sampling: SamplingConfig, rng, batch_sharding=None,
            widths: Optional[Sequence[int]] = None) -> dict:
  """Sample one response per prompt; returns host arrays in the update's layout plus the
  generated ids per row (`responses`) and whether each row stopped on its own.

  The response slots are cut to the smallest of `widths` (default `response_widths`) that
  holds the longest response: the update costs about what the rollouts generated, not
  `max_new_tokens`, and compiles for a few widths only, not for every new longest length."""
  gen = sampler(params, prompts, max_new_tokens=max_new_tokens, rng=rng, sampling=sampling,
                batch_sharding=batch_sharding)
  responses = [gen.tokens[i, :gen.lengths[i]].tolist() for i in range(len(prompts))]
  tools = [gen.tool_mask[i, :gen.lengths[i]] for i in range(len(prompts))]
  return layout(sampler, prompts, responses, tools, gen.stopped,
                max_new_tokens=max_new_tokens, widths=widths)


def layout(sampler: Sampler, prompts: Sequence[Sequence[int]],
           responses: Sequence[Sequence[int]], tool_masks: Sequence[np.ndarray],
           stopped: np.ndarray, *, max_new_tokens: int,
           widths: Optional[Sequence[int]] = None) -> dict:
  """Prompts and their sampled responses in the update's layout (`rollout`'s result): so
  that rows drawn in several rollouts (dynamic sampling) make one batch."""
  p = sampler.prompt_length(prompts, max_new_tokens)
  prompt_tokens, prompt_mask = left_pad(prompts, p, sampler.pad_id)
  widths = sorted(response_widths(max_new_tokens) if widths is None else widths)
  if widths[-1] != max_new_tokens:
    raise ValueError(f"rollout: the widest response width {widths[-1]} must be "
                     f"max_new_tokens={max_new_tokens}")
  lengths = np.asarray([len(r) for r in responses])
  n = next(w for w in widths if w >= int(lengths.max()))
  resp_tokens = np.full((len(responses), n), sampler.pad_id, np.int32)
  tool_mask = np.zeros((len(responses), n), bool)
  for i, (r, t) in enumerate(zip(responses, tool_masks)):
    resp_tokens[i, :len(r)] = r
    tool_mask[i, :len(r)] = np.asarray(t, bool)[:len(r)]
  resp_mask = np.arange(n)[None, :] < lengths[:, None]
  return {"tokens": np.concatenate([prompt_tokens, resp_tokens], axis=1),
          "mask": np.concatenate([prompt_mask, resp_mask], axis=1),
          "response_mask": resp_mask, "responses": [list(r) for r in responses],
          "stopped": np.asarray(stopped), "tool_mask": tool_mask}


def mixed_groups(outcomes: Sequence[float], group_size: int) -> np.ndarray:
  """Per group of `group_size` consecutive rows: whether its outcomes differ (a group whose
  outcomes all agree gives a group-relative estimator no advantage at all)."""
  o = np.asarray(outcomes, float).reshape(-1, group_size)
  return np.ptp(o, axis=1) > 0


def select_groups(mixed_per_draw: Sequence[np.ndarray], needed: int) -> list:
  """(draw, group) of the groups one update takes under dynamic sampling (DAPO): the mixed
  groups in draw order, then, if fewer than `needed` were drawn, agreeing ones in draw
  order to fill the batch (they carry no advantage; the batch shape stays fixed)."""
  mixed = [(d, g) for d, m in enumerate(mixed_per_draw) for g in np.flatnonzero(m)]
  rest = [(d, g) for d, m in enumerate(mixed_per_draw) for g in np.flatnonzero(~m)]
  return (mixed + rest)[:needed]


def row_step(rows: int, multiple: int, steps: int = 8) -> int:
  """The step between the `steps` fixed packed row counts of a batch of `rows` rollouts: a
  multiple of `multiple`, and `steps` of them hold `rows`."""
  return -(-max(rows // steps, 1) // multiple) * multiple


def packed_rows(rows: int, needed: int, multiple: int, steps: int = 8) -> int:
  """The packed row count for `needed` rows: the smallest of the fixed counts (multiples of
  `row_step`) that holds them, so the update compiles for a few shapes only."""
  step = row_step(rows, multiple, steps)
  return -(-max(needed, 1) // step) * step


def pack_update(tokens: np.ndarray, mask: np.ndarray, response_mask: np.ndarray, pad_id: int,
                multiple: int = 1) -> dict:
  """A rollout batch (tokens/mask [B, P+N], response_mask [B, N]) packed for the update
  (s2jax.rl.kernels, RLConfig.pack): each rollout's prompt without its padding, then its
  response, first-fit into rows as wide as the batch; the row count comes from
  `packed_rows` (a multiple of `multiple`: minibatches x data shards). Returns tokens,
  positions, segments [R, W] and the index maps `gather` [B, N] and `source` [R, W]."""
  b, width = tokens.shape
  n = response_mask.shape[1]
  seqs = [tokens[i][mask[i]] for i in range(b)]
  # pack rounds its row count up to a multiple of the step: `packed_rows` of what it needs.
  p = packing.pack(seqs, width, pad_id, rows_multiple=row_step(b, multiple))
  lengths = response_mask.sum(axis=1)
  prompt = np.asarray([len(x) for x in seqs]) - lengths
  t = np.arange(n)[None, :]
  # Response token t of rollout i is predicted at its row's column offset + prompt + t - 1.
  col = p.offset[:, None] + prompt[:, None] + t - 1
  flat = p.row[:, None] * width + np.where(t < lengths[:, None], col, p.offset[:, None])
  source = np.full(p.tokens.size, -1, np.int32)
  ii, tt = np.nonzero(response_mask)
  source[flat[ii, tt]] = ii * n + tt
  return {"tokens": p.tokens, "positions": p.positions, "segments": p.segments,
          "gather": flat.astype(np.int32), "source": source.reshape(p.tokens.shape)}


_LINE_BREAKS: dict = {}


def line_break_ids(tokenizer) -> frozenset:
  """Every token id that ends a line: the end-of-step token, and any other token whose
  text holds a newline (a sampled byte-fallback newline, a "\n\n" piece), since the text
  the PRM scores is split into steps at newlines. Computed once per tokenizer."""
  key = id(tokenizer)
  if key not in _LINE_BREAKS:
    ids = {tokenizer.step_end_id}
    for t in range(tokenizer.vocab_size):
      if t != tokenizer.eos_id and "\n" in tokenizer.decode([t]):
        ids.add(t)
    _LINE_BREAKS[key] = (tokenizer, frozenset(ids))  # the tokenizer kept: ids stay unique
  return _LINE_BREAKS[key][1]


def response_steps(tokenizer, ids: Sequence[int], is_final) -> tuple[list, list]:
  """The reasoning steps of generated ids, as texts, and the index of each step's
  end-of-step token; stops at the final-answer line (`is_final(text)`) or eos. Empty
  lines are not steps. The texts are what the PRM scores, the indices where the reward
  goes, so the two agree by construction."""
  steps, ends, cur = [], [], []
  breaks = line_break_ids(tokenizer)
  for i, t in enumerate(ids):
    t = int(t)
    if t == tokenizer.eos_id:
      break
    if t not in breaks:
      cur.append(t)
      continue
    text = tokenizer.decode(cur)
    cur = []
    if is_final(text):
      break
    if text.strip():
      steps.append(text)
      ends.append(i)
  return steps, ends
