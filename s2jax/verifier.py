"""Step-level (PRM) and outcome (ORM) verifiers on the shared transformer's scalar head.

A PRM's score for a step is the scalar head at that step's end-of-step token
(`s2jax.data.steps`); an ORM's score for a solution is the scalar head at its last real
token. Both are logits of "this step / this solution is correct". The same jitted kernel
scores batches for training, filtering, search and RL rewards.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from s2jax.models.transformer import Transformer, default_positions


def scalars_at(model: Transformer, params, tokens, mask, positions) -> jax.Array:
  """Scalar-head logits at `positions` [B, S] of each row → [B, S]."""
  out = model.apply({"params": params}, tokens, default_positions(mask), mask)
  if out.scalars is None:
    raise ValueError("the verifier model needs scalar_head=True")
  return jnp.take_along_axis(out.scalars, positions, axis=1)


@functools.partial(jax.jit, static_argnames=("model",))
def score_steps(model: Transformer, params, tokens, mask, step_pos, step_valid) -> jax.Array:
  """P(step correct) for every step slot [B, S]; 0 where `step_valid` is False."""
  probs = jax.nn.sigmoid(scalars_at(model, params, tokens, mask, step_pos))
  return jnp.where(step_valid, probs, 0.0)


def last_token_positions(mask) -> jax.Array:
  """Index of each row's last real token (right-padded rows) → [B, 1]."""
  return (jnp.sum(mask, axis=1, keepdims=True) - 1).astype(jnp.int32)


def _bce(logits, labels):
  """Binary cross-entropy with (possibly soft) labels in [0, 1], from logits."""
  return jnp.maximum(logits, 0) - logits * labels + jnp.log1p(jnp.exp(-jnp.abs(logits)))


def prm_loss(model: Transformer, params, batch) -> tuple:
  """Sums for `train.make_train_step`: BCE over every valid step slot.

  batch: tokens [B, T], mask [B, T], step_pos [B, S], step_labels [B, S] (0/1 or soft),
  step_valid [B, S]."""
  logits = scalars_at(model, params, batch["tokens"], batch["mask"], batch["step_pos"])
  w = batch["step_valid"].astype(jnp.float32)
  labels = batch["step_labels"].astype(jnp.float32)
  hit = ((logits > 0) == (labels > 0.5)).astype(jnp.float32)
  return jnp.sum(_bce(logits, labels) * w), jnp.sum(w), {"step_accuracy": jnp.sum(hit * w)}


def orm_loss(model: Transformer, params, batch) -> tuple:
  """Sums for `train.make_train_step`: BCE of the solution label at its last token.

  batch: tokens [B, T], mask [B, T], label [B] (1 = final answer correct)."""
  logits = scalars_at(model, params, batch["tokens"], batch["mask"],
                      last_token_positions(batch["mask"]))[:, 0]
  labels = batch["label"].astype(jnp.float32)
  w = jnp.ones_like(labels)
  hit = ((logits > 0) == (labels > 0.5)).astype(jnp.float32)
  return jnp.sum(_bce(logits, labels)), jnp.sum(w), {"accuracy": jnp.sum(hit)}
