"""Step-level (PRM) and outcome (ORM) verifiers on the shared transformer's scalar head.

A PRM's score for a step is the scalar head at that step's end-of-step token
(`s2jax.data.steps`); an ORM's score for a solution is the scalar head at its last real
token. Both are logits of "this step / this solution is correct". The same jitted kernel
scores batches for training, filtering, search and RL rewards.
"""
from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from s2jax.data import stepwise
from s2jax.models.transformer import Transformer, default_positions
from s2jax.sharding import to_global, to_host

KINDS = ("prm", "orm")


def scalars_at(model: Transformer, params, tokens, mask, positions, rope_positions=None,
               segments=None) -> jax.Array:
  """Scalar-head logits at `positions` [B, S] of each row → [B, S]. A packed batch brings
  its own `rope_positions` and `segments` (stepwise.prm_packed_batch)."""
  if rope_positions is None:
    rope_positions = default_positions(mask)
  out = model.apply({"params": params}, tokens, rope_positions, mask, segment_ids=segments)
  if out.scalars is None:
    raise ValueError("the verifier model needs scalar_head=True")
  return jnp.take_along_axis(out.scalars, positions, axis=1)


@functools.partial(jax.jit, static_argnames=("model",))
def score_steps(model: Transformer, params, tokens, mask, step_pos, step_valid) -> jax.Array:
  """P(step correct) for every step slot [B, S]; 0 where `step_valid` is False."""
  probs = jax.nn.sigmoid(scalars_at(model, params, tokens, mask, step_pos))
  return jnp.where(step_valid, probs, 0.0)


@functools.partial(jax.jit, static_argnames=("model",))
def score_outcomes(model: Transformer, params, tokens, mask) -> jax.Array:
  """P(solution correct) [B] from the scalar head at each row's last real token."""
  return jax.nn.sigmoid(scalars_at(model, params, tokens, mask, last_token_positions(mask))[:, 0])


def last_token_positions(mask) -> jax.Array:
  """Index of each row's last real token (right-padded rows) → [B, 1]."""
  return (jnp.sum(mask, axis=1, keepdims=True) - 1).astype(jnp.int32)


def _bce(logits, labels):
  """Binary cross-entropy with (possibly soft) labels in [0, 1], from logits."""
  return jnp.maximum(logits, 0) - logits * labels + jnp.log1p(jnp.exp(-jnp.abs(logits)))


def within_problem_ranking(logits, step_valid, group, outcome) -> tuple:
  """(summed pairwise logistic loss, number of pairs) over every pair of rows that are a
  right and a wrong solution of the same problem (same `group` >= 0; `outcome` 1 = answer
  right). A solution's score is its lowest step logit, the order best-of-N by PRM-min
  ranks solutions in, so the loss pushes a problem's right solutions above its wrong ones.
  Rows without steps take no part."""
  has = jnp.any(step_valid, axis=1)
  score = jnp.min(jnp.where(step_valid, logits, jnp.inf), axis=1)
  score = jnp.where(has, score, 0.0)
  right, wrong = has & (outcome > 0.5), has & (outcome <= 0.5)
  pair = ((group[:, None] == group[None, :]) & (group[:, None] >= 0)
          & right[:, None] & wrong[None, :])
  loss = jax.nn.softplus(score[None, :] - score[:, None])  # -log sigmoid(s_right - s_wrong)
  return jnp.sum(jnp.where(pair, loss, 0.0)), jnp.sum(pair).astype(jnp.float32)


def prm_loss(model: Transformer, params, batch, ranking_weight: float = 0.0) -> tuple:
  """Sums for `train.make_train_step`: BCE over every valid step slot, plus, with
  `ranking_weight` > 0 and a batch that has `group` and `outcome`, that weight times the
  mean `within_problem_ranking` loss per pair (scaled by the step count, so that after
  the train step's division by it the two terms are a step mean and a pair mean).

  batch: tokens [B, T], mask [B, T], step_pos [B, S], step_labels [B, S] (0/1 or soft),
  step_valid [B, S]; packed (stepwise.prm_packed_batch): also positions and segments;
  for ranking: group [B] (the problem, -1 for none) and outcome [B]."""
  logits = scalars_at(model, params, batch["tokens"], batch["mask"], batch["step_pos"],
                      batch.get("positions"), batch.get("segments"))
  w = batch["step_valid"].astype(jnp.float32)
  labels = batch["step_labels"].astype(jnp.float32)
  hit = ((logits > 0) == (labels > 0.5)).astype(jnp.float32)
  total, weight = jnp.sum(_bce(logits, labels) * w), jnp.sum(w)
  metrics = {"step_accuracy": jnp.sum(hit * w)}
  if ranking_weight > 0 and "group" in batch:
    rank_sum, pairs = within_problem_ranking(logits, batch["step_valid"], batch["group"],
                                             batch["outcome"])
    mean_pair = rank_sum / jnp.maximum(pairs, 1.0)
    total = total + ranking_weight * weight * mean_pair
    metrics.update(ranking_loss=mean_pair * weight, ranking_pairs=pairs * weight)
  return total, weight, metrics


def orm_loss(model: Transformer, params, batch) -> tuple:
  """Sums for `train.make_train_step`: BCE of the solution label at its last token.

  batch: tokens [B, T], mask [B, T], label [B] (1 = final answer correct)."""
  logits = scalars_at(model, params, batch["tokens"], batch["mask"],
                      last_token_positions(batch["mask"]))[:, 0]
  labels = batch["label"].astype(jnp.float32)
  w = jnp.ones_like(labels)
  hit = ((logits > 0) == (labels > 0.5)).astype(jnp.float32)
  return jnp.sum(_bce(logits, labels)), jnp.sum(w), {"accuracy": jnp.sum(hit)}


class Scorer:
  """Host-side batching around the jitted kernels: records sorted by length, fixed batch
  size, lengths padded to a multiple and step slots to a multiple of 4, so a handful of
  shapes get compiled however many solutions are scored."""

  def __init__(self, model: Transformer, params, tokenizer, *, batch_size: int = 64,
               pad_multiple: int = 64, batch_sharding=None):
    self.model, self.params, self.tokenizer = model, params, tokenizer
    self.batch_size, self.pad_multiple = batch_size, pad_multiple
    self.batch_sharding = batch_sharding

  @classmethod
  def from_workdir(cls, workdir: str, batch_size: int = 64, **kw) -> "Scorer":
    """The verifier a training workdir holds, its batches sharded over its mesh."""
    from s2jax import sharding, workdirs
    m = workdirs.load_model(workdir)
    return cls(m.model, m.params, m.tokenizer, batch_size=batch_size,
               batch_sharding=sharding.batch_sharding(m.mesh, 2, batch_size), **kw)

  def _batches(self, records):
    lengths = [stepwise.record_length(self.tokenizer, r) for r in records]
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), self.batch_size):
      idx = order[start:start + self.batch_size]
      chunk = [records[i] for i in idx]
      chunk += [chunk[-1]] * (self.batch_size - len(chunk))
      length = -(-max(lengths[i] for i in idx) // self.pad_multiple) * self.pad_multiple
      yield idx, chunk, length

  def _put(self, x):
    return x if self.batch_sharding is None else to_global(x, self.batch_sharding)

  def step_scores(self, prompts: Sequence[str], step_lists: Sequence[Sequence[str]]) -> list:
    """P(step correct) for every step of every solution → one array per solution."""
    records = [{"prompt": p, "completions": list(s)} for p, s in zip(prompts, step_lists)]
    out = [np.zeros((0,), np.float32)] * len(records)
    nonempty = [i for i, r in enumerate(records) if r["completions"]]
    for idx, chunk, length in self._batches([records[i] for i in nonempty]):
      slots = -(-max(len(r["completions"]) for r in chunk) // 4) * 4
      b = stepwise.prm_batch(self.tokenizer, chunk, length, slots)
      probs = to_host(score_steps(self.model, self.params, self._put(b["tokens"]),
                                  self._put(b["mask"]), self._put(b["step_pos"]),
                                  self._put(b["step_valid"])))
      for j, i in enumerate(idx):
        out[nonempty[i]] = probs[j, :len(records[nonempty[i]]["completions"])]
    return out

  def outcome_scores(self, prompts: Sequence[str], solutions: Sequence[str]) -> np.ndarray:
    """P(final answer correct) for every solution."""
    records = [{"prompt": p, "solution": s} for p, s in zip(prompts, solutions)]
    out = np.zeros((len(records),), np.float32)
    for idx, chunk, length in self._batches(records):
      b = stepwise.outcome_batch(self.tokenizer, chunk, length)
      probs = to_host(score_outcomes(self.model, self.params, self._put(b["tokens"]),
                                     self._put(b["mask"])))
      out[idx] = probs[:len(idx)]
    return out
