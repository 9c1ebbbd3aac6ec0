"""The jitted RL update on the shared transformer: per-token log-probs, KL, a registered
loss and advantage estimator, in one pure function.

Layout. A rollout batch is [B, P + N]: each prompt left-padded to P tokens (exactly as
the sampler saw it, so rotary positions match) followed by N = max_new_tokens response
slots. The logits and value at position P - 1 + t belong to response token t: they are
computed from the prefix that chose it. Everything per token is [B, N] in response
coordinates, with `response_mask` marking generated tokens.

Rewards. The host places `score_rewards` [B, N]: a PRM score at each step's end-of-step
token (dense), an outcome reward on the last generated token, or both. The update adds
the per-token KL penalty against the frozen reference policy itself, because it is
computed from the same forward pass as the old log-probabilities.

Advantages. PPO: GAE over the value head (a reverse `lax.scan`). GRPO and RLOO are
critic-free: the sequence's total reward is compared with the other samples of the same
prompt (rows come in groups of `group_size` consecutive rows) and the result is given to
every token of the response.

The update (`make_update`) is one pure function: old log-probs, reference log-probs,
values, rewards and advantages, then `lax.scan` over epochs of `lax.scan` over shuffled
minibatches of `train.make_train_step`, the step SFT and the verifiers use.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp

from s2jax import train as train_lib
from s2jax.models.transformer import Transformer, default_positions
from s2jax.rl import advantages, losses

ALGORITHMS = ("ppo", "grpo", "rloo")
# The advantage estimator each algorithm uses unless `advantage` names another.
DEFAULT_ADVANTAGE = {"ppo": "gae", "grpo": "grpo", "rloo": "rloo"}
KL_ESTIMATORS = ("k1", "k2", "k3")


@dataclasses.dataclass(frozen=True)
class RLConfig:
  algorithm: str = "ppo"       # ppo (GAE + value head) | grpo | rloo (critic-free)
  group_size: int = 1          # samples per prompt (grpo/rloo need >= 2)
  epochs: int = 2
  minibatches: int = 4
  clip_eps: float = 0.2
  value_clip: float = 0.2
  vf_coef: float = 0.5
  entropy_coef: float = 0.0
  gamma: float = 1.0
  gae_lambda: float = 0.95
  kl_estimator: str = "k1"
  whiten_advantages: bool = True  # gae: normalise advantages over the batch
  advantage: str = ""          # an s2jax.rl.advantages name; "" = the algorithm's own
  loss: str = "ppo_clip"       # an s2jax.rl.losses name

  def __post_init__(self):
    def bad(key, why):
      raise ValueError(f"rl config: {key}={getattr(self, key)!r} {why}")
    if self.algorithm not in ALGORITHMS:
      bad("algorithm", f"must be one of {ALGORITHMS}")
    if self.kl_estimator not in KL_ESTIMATORS:
      bad("kl_estimator", f"must be one of {KL_ESTIMATORS}")
    if self.advantage and self.advantage not in advantages.names():
      bad("advantage", f"must be one of {advantages.names()}")
    if self.loss not in losses.names():
      bad("loss", f"must be one of {losses.names()}")
    if self.estimator.grouped and self.group_size < 2:
      bad("group_size", f"must be >= 2 for {self.advantage_name} (advantages compare a "
                        "prompt's samples with each other)")
    for key in ("group_size", "epochs", "minibatches"):
      if getattr(self, key) < 1:
        bad(key, "must be >= 1")
    if not 0 < self.clip_eps < 1:
      bad("clip_eps", "must be in (0, 1)")

  @property
  def advantage_name(self) -> str:
    return self.advantage or DEFAULT_ADVANTAGE[self.algorithm]

  @property
  def estimator(self) -> advantages.Estimator:
    return advantages.get(self.advantage_name)

  @property
  def uses_critic(self) -> bool:
    return self.estimator.uses_critic


# ------------------------------------------------------------------ per-token quantities

def response_logits_values(policy: Transformer, value: Optional[Transformer], params,
                           tokens, mask, num_new: int):
  """Logits [B, N, V] and values [B, N] (None without a critic) for the response slots.

  `params` is {"policy": ...} (the value, if any, on the policy's scalar head: a shared
  trunk) or {"policy": ..., "value": ...} (a separate value model)."""
  positions = default_positions(mask)
  out = policy.apply({"params": params["policy"]}, tokens, positions, mask)
  start = tokens.shape[1] - num_new - 1
  logits = jax.lax.dynamic_slice_in_dim(out.logits, start, num_new, axis=1)
  values = None
  if "value" in params:
    v = value.apply({"params": params["value"]}, tokens, positions, mask).scalars
    values = jax.lax.dynamic_slice_in_dim(v, start, num_new, axis=1)
  elif out.scalars is not None:
    values = jax.lax.dynamic_slice_in_dim(out.scalars, start, num_new, axis=1)
  return logits, values


def token_logprobs(logits, tokens) -> tuple[jax.Array, jax.Array]:
  """log p(token) and the entropy of the full distribution, both [B, N]."""
  logp_all = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  logp = jnp.take_along_axis(logp_all, tokens[..., None], axis=-1)[..., 0]
  entropy = -jnp.sum(jnp.exp(logp_all) * logp_all, axis=-1)
  return logp, entropy


def kl_penalty(logp, ref_logp, estimator: str = "k1"):
  """Per-token estimate of KL(policy || reference) from tokens sampled by the policy
  (Schulman's k1, k2, k3): k1 = log r is unbiased but can be negative, k2 = (log r)^2 / 2
  is low-variance and biased, k3 = r' - 1 - log r' (r' = p_ref/p) is unbiased and >= 0."""
  log_ratio = logp - ref_logp
  if estimator == "k1":
    return log_ratio
  if estimator == "k2":
    return 0.5 * jnp.square(log_ratio)
  if estimator == "k3":
    return jnp.expm1(-log_ratio) + log_ratio
  raise ValueError(f"unknown KL estimator {estimator!r}; one of {KL_ESTIMATORS}")


def rl_loss(policy, value, cfg: RLConfig, params, batch) -> tuple:
  """Sums for `train.make_train_step` over the response tokens of a minibatch."""
  n = batch["response_mask"].shape[1]
  logits, values = response_logits_values(policy, value, params, batch["tokens"],
                                          batch["mask"], n)
  logp, entropy = token_logprobs(logits, batch["response"])
  m = batch["loss_mask"].astype(jnp.float32)
  pg, per_token = losses.get(cfg.loss)(logp, batch["old_logp"], batch["advantages"], cfg)
  loss = pg - cfg.entropy_coef * entropy
  metrics = {k: jnp.sum(v * m) for k, v in per_token.items()}
  metrics.update(entropy=jnp.sum(entropy * m),
                 # k3 between the minibatch's current and old policy: how far the epochs
                 # moved it
                 approx_kl=jnp.sum(kl_penalty(batch["old_logp"], logp, "k3") * m))
  if cfg.uses_critic:
    vf = losses.clipped_value_loss(values, batch["old_values"], batch["returns"],
                                   cfg.value_clip)
    loss = loss + cfg.vf_coef * vf
    metrics["value_loss"] = jnp.sum(vf * m)
  return jnp.sum(loss * m), jnp.sum(m), metrics


def make_update(policy: Transformer, value: Optional[Transformer], optimizer,
                cfg: RLConfig):
  """Pure `(state, inputs) -> (state, metrics)`; jit it with `train.jit_train_step`.

  inputs: tokens/mask [B, P+N], response_mask/score_rewards [B, N] (host-placed step and
  outcome rewards), ref_params (the frozen reference policy), kl_coef (scalar), rng, and
  optionally loss_mask [B, N]: the response tokens the loss is on (default: all of them;
  the calculator's tokens are left out with data.tool_tokens="mask")."""
  step = train_lib.make_train_step(
      lambda p, b: rl_loss(policy, value, cfg, p, b), optimizer)

  def update(state, inputs):
    tokens, mask = inputs["tokens"], inputs["mask"]
    resp_mask = inputs["response_mask"]
    n = resp_mask.shape[1]
    b = tokens.shape[0]
    response = tokens[:, -n:]
    m = resp_mask.astype(jnp.float32)
    logits, old_values = response_logits_values(policy, value, state.params, tokens, mask, n)
    old_logp, _ = token_logprobs(logits, response)
    ref_logits, _ = response_logits_values(policy, None, {"policy": inputs["ref_params"]},
                                           tokens, mask, n)
    ref_logp, _ = token_logprobs(ref_logits, response)
    kl = kl_penalty(old_logp, ref_logp, cfg.kl_estimator) * m
    rewards = inputs["score_rewards"] * m - inputs["kl_coef"] * kl
    if not cfg.uses_critic:
      old_values = jnp.zeros_like(m)
    advantages, returns = cfg.estimator.fn(rewards, old_values, resp_mask, cfg)
    batch = {"tokens": tokens, "mask": mask, "response": response, "response_mask": resp_mask,
             "loss_mask": inputs.get("loss_mask", resp_mask),
             "old_logp": jax.lax.stop_gradient(old_logp),
             "old_values": jax.lax.stop_gradient(old_values),
             "advantages": jax.lax.stop_gradient(advantages),
             "returns": jax.lax.stop_gradient(returns)}
    mb = b // cfg.minibatches
    # Shuffle whole groups, so GRPO/RLOO groups stay together (the advantage is per row
    # already, but keeping groups whole keeps minibatch statistics comparable).
    groups = b // cfg.group_size

    def epoch(state, key):
      perm = jax.random.permutation(key, groups)
      rows = (perm[:, None] * cfg.group_size + jnp.arange(cfg.group_size)).reshape(-1)
      shuffled = jax.tree.map(lambda x: x[rows].reshape(cfg.minibatches, mb, *x.shape[1:]),
                              batch)
      return jax.lax.scan(step, state, shuffled)

    state, metrics = jax.lax.scan(epoch, state, jax.random.split(inputs["rng"], cfg.epochs))
    finite = jnp.all(metrics["finite"])  # every minibatch step of every epoch
    metrics = jax.tree.map(jnp.mean, metrics)
    metrics["finite"] = finite
    metrics.pop("input_tokens")  # per minibatch; the learner counts the update
    n_tok = jnp.maximum(m.sum(), 1.0)
    metrics.update(kl=kl.sum() / n_tok, kl_per_sequence=kl.sum() / b,
                   score_reward=(inputs["score_rewards"] * m).sum() / b,
                   total_reward=rewards.sum() / b, response_tokens=m.sum() / b,
                   advantage_std=jnp.sqrt((jnp.square(advantages) * m).sum() / n_tok))
    return state, metrics

  return update


def check_batch(cfg: RLConfig, rows: int, shards: int = 1) -> None:
  """The rollout batch has to split into minibatches of whole groups that divide over the
  data shards."""
  mb = rows // cfg.minibatches
  if rows % cfg.minibatches or mb % cfg.group_size or mb % shards:
    raise ValueError(f"rl: {rows} rollout rows must split into minibatches={cfg.minibatches} "
                     f"of whole groups (group_size={cfg.group_size}) that divide over "
                     f"{shards} data shards")


