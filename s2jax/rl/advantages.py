"""Advantage estimators, registered by name (`rl.advantage` in a config; by default the
one `rl.algorithm` names: ppo -> gae, grpo -> grpo, rloo -> rloo).

An estimator maps the per-token rewards [B, N] (score rewards minus the KL penalty), the
old values [B, N] (zeros without a critic) and the response mask to (advantages, returns),
both [B, N]. It declares whether it needs a critic (a value head) and whether it compares
the samples of one prompt (rows come in groups of `group_size` consecutive rows).

  @register("my_estimator", uses_critic=False, grouped=True)
  def my_estimator(rewards, values, mask, cfg): ...
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from s2jax.registry import Registry


@dataclasses.dataclass(frozen=True)
class Estimator:
  fn: Callable  # (rewards, values, mask, cfg) -> (advantages, returns)
  uses_critic: bool
  grouped: bool


_REGISTRY = Registry("advantage estimator")
get, names = _REGISTRY.get, _REGISTRY.names


def register(name: str, *, uses_critic: bool, grouped: bool = False):
  return _REGISTRY.register(name, lambda fn: Estimator(fn, uses_critic, grouped))


def gae(rewards, values, mask, gamma: float, lam: float):
  """Generalised advantage estimation over [B, N] with a reverse `lax.scan` over time.

  The episode ends after the last masked-in token (no bootstrap there). Returns
  (advantages, returns = advantages + values), zero outside the mask."""
  mask = mask.astype(jnp.float32)
  next_values = jnp.concatenate([values[:, 1:], jnp.zeros_like(values[:, :1])], axis=1)
  next_mask = jnp.concatenate([mask[:, 1:], jnp.zeros_like(mask[:, :1])], axis=1)
  deltas = (rewards + gamma * next_values * next_mask - values) * mask

  def back(carry, x):
    delta, nm = x
    adv = delta + gamma * lam * nm * carry
    return adv, adv

  _, adv = jax.lax.scan(back, jnp.zeros(rewards.shape[0], jnp.float32),
                        (deltas.T, next_mask.T), reverse=True)
  adv = adv.T * mask
  return adv, (adv + values) * mask


def group_advantages(returns, group_size: int, algorithm: str, eps: float = 1e-6):
  """Sequence-level advantages [B] for rows in groups of `group_size` consecutive rows.

  grpo: (R - group mean) / (group std + eps); rloo: R - mean of the *other* rows."""
  r = returns.reshape(-1, group_size)
  mean = r.mean(axis=1, keepdims=True)
  if algorithm == "grpo":
    adv = (r - mean) / (r.std(axis=1, keepdims=True) + eps)
  elif algorithm == "rloo":
    adv = group_size / (group_size - 1) * (r - mean)  # = R - (sum - R) / (G - 1)
  else:
    raise ValueError(f"group advantages for {algorithm!r}; grpo or rloo")
  return adv.reshape(-1)


def masked_whiten(x, mask, eps: float = 1e-8):
  m = mask.astype(jnp.float32)
  n = jnp.maximum(m.sum(), 1.0)
  mean = (x * m).sum() / n
  var = (jnp.square(x - mean) * m).sum() / n
  return (x - mean) * jax.lax.rsqrt(var + eps) * m


@register("gae", uses_critic=True)
def _gae(rewards, values, mask, cfg):
  # Whitening (RLConfig.whiten_advantages) is the update's, over the loss tokens.
  return gae(rewards, values, mask, cfg.gamma, cfg.gae_lambda)


def _sequence_level(algorithm: str):
  """The response's total reward against the other samples of its prompt, given to every
  token; no critic, so no returns."""
  def estimate(rewards, values, mask, cfg):
    m = mask.astype(jnp.float32)
    seq_adv = group_advantages(rewards.sum(axis=1), cfg.group_size, algorithm)
    return seq_adv[:, None] * m, jnp.zeros_like(m)
  return estimate


register("grpo", uses_critic=False, grouped=True)(_sequence_level("grpo"))
register("rloo", uses_critic=False, grouped=True)(_sequence_level("rloo"))
