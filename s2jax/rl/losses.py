"""Per-token policy losses, registered by name (`rl.loss` in a config).

A loss maps the new and old log-probabilities and the advantages, all [B, N], to a
per-token loss to minimise and a dict of per-token diagnostics; the update masks and sums
them. The value loss (with a critic) and the entropy bonus are added by the update.

  @register("my_loss")
  def my_loss(logp, old_logp, advantages, cfg): ...
"""
from __future__ import annotations

import jax.numpy as jnp

from s2jax.registry import Registry

_REGISTRY = Registry("policy loss")
register, get, names = _REGISTRY.register, _REGISTRY.get, _REGISTRY.names


def clipped_pg_loss(logp, old_logp, advantages, clip_eps: float):
  """Per-token PPO surrogate, to minimise: -min(r A, clip(r, 1 - e, 1 + e) A), and
  whether the clip was active."""
  ratio = jnp.exp(logp - old_logp)
  unclipped = ratio * advantages
  clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
  return -jnp.minimum(unclipped, clipped), (unclipped > clipped).astype(jnp.float32)


def clipped_value_loss(values, old_values, returns, value_clip: float):
  """Per-token 0.5 * max((V - R)^2, (V_old + clip(V - V_old) - R)^2)."""
  v_clipped = old_values + jnp.clip(values - old_values, -value_clip, value_clip)
  return 0.5 * jnp.maximum(jnp.square(values - returns), jnp.square(v_clipped - returns))


@register("ppo_clip")
def ppo_clip(logp, old_logp, advantages, cfg):
  pg, clipped = clipped_pg_loss(logp, old_logp, advantages, cfg.clip_eps)
  return pg, {"pg_loss": pg, "clip_fraction": clipped}
