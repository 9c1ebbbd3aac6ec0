"""The jitted RL update on the shared transformer: per-token log-probs, KL, a registered
loss and advantage estimator, in one pure function.

Layout. A rollout batch is [B, P + N]: each prompt left-padded to P tokens (exactly as
the sampler saw it, so rotary positions match) followed by N = max_new_tokens response
slots. The logits and value at position P - 1 + t belong to response token t: they are
computed from the prefix that chose it. Everything per token is [B, N] in response
coordinates, with `response_mask` marking generated tokens.

Packed layout (RLConfig.pack). The same rollouts without their padding, several to a row
of [R, W] (`segments` keep them apart, `positions` restart at each), and two host-built
index maps: `gather` [B, N], the flat packed position whose output belongs to response
token (b, t), and `source` [R, W], the response slot b * N + t each packed position's
output belongs to (-1 where none). The per-token quantities the advantages need are
gathered into [B, N]; the minibatch loss runs on shuffled packed rows with everything
carried back into the packed layout.

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
  whiten_advantages: bool = True  # with a critic: normalise advantages over the loss tokens
  # Where the KL to the reference goes: "reward" (a per-token penalty in the reward, as in
  # PPO-RLHF), "loss" (a per-token loss term beside the policy loss, as in the GRPO paper,
  # so that group statistics see the score alone), or "" for the algorithm's own
  # (grpo: loss, ppo and rloo: reward).
  kl_in: str = ""
  advantage: str = ""          # an s2jax.rl.advantages name; "" = the algorithm's own
  loss: str = "ppo_clip"       # an s2jax.rl.losses name
  # The update's rows packed (several rollouts per row, segment ids keep them apart): it
  # then computes about the tokens the rollouts hold instead of every prompt's padding
  # and every response's empty slots (s2jax.rl.rollouts.pack_update).
  pack: bool = False

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
    if self.kl_in not in ("", "reward", "loss"):
      bad("kl_in", "must be 'reward', 'loss' or '' (the algorithm's own)")
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

  @property
  def kl_in_loss(self) -> bool:
    return (self.kl_in or ("loss" if self.algorithm == "grpo" else "reward")) == "loss"


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


def packed_logits_values(policy: Transformer, value: Optional[Transformer], params, tokens,
                         positions, segments):
  """Logits [R, W, V] and values [R, W] (None without a critic) of packed rows; the output
  at position w belongs to the token at w + 1."""
  mask = segments > 0
  out = policy.apply({"params": params["policy"]}, tokens, positions, mask,
                     segment_ids=segments)
  values = out.scalars
  if "value" in params:
    values = value.apply({"params": params["value"]}, tokens, positions, mask,
                         segment_ids=segments).scalars
  return out.logits, values


def next_tokens(tokens):
  """The token each packed position predicts (the last column predicts nothing: pad 0)."""
  return jnp.concatenate([tokens[:, 1:], jnp.zeros_like(tokens[:, :1])], axis=1)


def policy_outputs(policy, value, params, batch) -> tuple:
  """(log p of each target token, entropy, values) in the batch's own layout: [b, N]
  response slots, or [r, W] packed positions (a batch with `segments`)."""
  if "segments" in batch:
    logits, values = packed_logits_values(policy, value, params, batch["tokens"],
                                          batch["positions"], batch["segments"])
    targets = next_tokens(batch["tokens"])
  else:
    logits, values = response_logits_values(policy, value, params, batch["tokens"],
                                            batch["mask"], batch["response"].shape[1])
    targets = batch["response"]
  logp, entropy = token_logprobs(logits, targets)
  return logp, entropy, values


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
  """Sums for `train.make_train_step` over the response tokens of a minibatch (either
  layout: every per-token input is in the batch's own layout)."""
  logp, entropy, values = policy_outputs(policy, value, params, batch)
  m = batch["loss_mask"].astype(jnp.float32)
  pg, per_token = losses.get(cfg.loss)(logp, batch["old_logp"], batch["advantages"], cfg)
  loss = pg - cfg.entropy_coef * entropy
  metrics = {k: jnp.sum(v * m) for k, v in per_token.items()}
  metrics.update(entropy=jnp.sum(entropy * m),
                 # k3 between the minibatch's current and old policy: how far the epochs
                 # moved it
                 approx_kl=jnp.sum(kl_penalty(batch["old_logp"], logp, "k3") * m))
  if cfg.kl_in_loss:  # the KL to the reference as a loss term (`RLConfig.kl_in`)
    kl = kl_penalty(logp, batch["ref_logp"], cfg.kl_estimator)
    loss = loss + batch["kl_coef"] * kl
    metrics["kl_loss"] = jnp.sum(kl * m)
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
    loss_mask = inputs.get("loss_mask", resp_mask)
    packed = inputs.get("packed")
    if packed is None:
      batch = {"tokens": tokens, "mask": mask, "response": response}
      to_slots = lambda x: x
    else:
      batch = {"tokens": packed["tokens"], "positions": packed["positions"],
               "segments": packed["segments"], "mask": packed["segments"] > 0}
      to_slots = lambda x: x.reshape(-1)[packed["gather"]]
    old_logp, _, old_values = policy_outputs(policy, value, state.params, batch)
    ref_logp, _, _ = policy_outputs(policy, None, {"policy": inputs["ref_params"]}, batch)
    old_logp, ref_logp = to_slots(old_logp), to_slots(ref_logp)
    if old_values is not None:
      old_values = to_slots(old_values)
    # The KL counts only the tokens the policy chose (the loss mask): tool-written tokens
    # were never learned, so their log-ratio is drift of either sign, not divergence.
    lm = loss_mask.astype(jnp.float32)
    kl = kl_penalty(old_logp, ref_logp, cfg.kl_estimator) * lm
    rewards = inputs["score_rewards"] * m
    if not cfg.kl_in_loss:
      rewards = rewards - inputs["kl_coef"] * kl
    if not cfg.uses_critic:
      old_values = jnp.zeros_like(m)
    advantages, returns = estimate_advantages(cfg, rewards, old_values, resp_mask, loss_mask)
    per_token = {"loss_mask": loss_mask, "old_logp": old_logp, "old_values": old_values,
                 "advantages": advantages, "returns": returns}
    if cfg.kl_in_loss:
      per_token.update(ref_logp=ref_logp, kl_coef=jnp.full_like(m, inputs["kl_coef"]))
    if packed is not None:  # back into the packed layout; positions of no response: 0
      src = packed["source"]
      per_token = jax.tree.map(
          lambda x: jnp.where(src >= 0, x.reshape(-1)[jnp.maximum(src, 0)],
                              jnp.zeros((), x.dtype)), per_token)
    batch.update(jax.tree.map(jax.lax.stop_gradient, per_token))
    rows_total = batch["tokens"].shape[0]
    mb = rows_total // cfg.minibatches
    # Shuffle whole groups, so GRPO/RLOO groups stay together (the advantage is per row
    # already, but keeping groups whole keeps minibatch statistics comparable); packed
    # rows are shuffled as they are, each holding whole rollouts.
    group = 1 if packed is not None else cfg.group_size
    groups = rows_total // group

    def epoch(state, key):
      perm = jax.random.permutation(key, groups)
      rows = (perm[:, None] * group + jnp.arange(group)).reshape(-1)
      shuffled = jax.tree.map(lambda x: x[rows].reshape(cfg.minibatches, mb, *x.shape[1:]),
                              batch)
      return jax.lax.scan(step, state, shuffled)

    state, metrics = jax.lax.scan(epoch, state, jax.random.split(inputs["rng"], cfg.epochs))
    finite = jnp.all(metrics["finite"])  # every minibatch step of every epoch
    metrics = jax.tree.map(jnp.mean, metrics)
    metrics["finite"] = finite
    metrics.pop("input_tokens")  # per minibatch; the learner counts the update
    n_tok = jnp.maximum(lm.sum(), 1.0)
    metrics.update(update_diagnostics(advantages, returns, old_values,
                                      inputs["score_rewards"] * m, lm, cfg.uses_critic))
    metrics.update(kl=kl.sum() / n_tok, kl_per_sequence=kl.sum() / b,
                   score_reward=(inputs["score_rewards"] * m).sum() / b,
                   total_reward=rewards.sum() / b, response_tokens=m.sum() / b,
                   advantage_std=jnp.sqrt((jnp.square(advantages) * m).sum() / n_tok))
    return state, metrics

  return update


def _masked_corr(x, y, w):
  """Pearson correlation of x and y weighted by w (0 where either has no spread)."""
  n = jnp.maximum(w.sum(), 1.0)
  mx, my = (x * w).sum() / n, (y * w).sum() / n
  cov = ((x - mx) * (y - my) * w).sum() / n
  vx, vy = (jnp.square(x - mx) * w).sum() / n, (jnp.square(y - my) * w).sum() / n
  return jnp.where((vx > 0) & (vy > 0), cov * jax.lax.rsqrt(jnp.maximum(vx * vy, 1e-30)), 0.0)


def update_diagnostics(advantages, returns, values, score_rewards, loss_mask,
                       uses_critic: bool) -> dict:
  """What tells whether the update can learn: the correlation, over rollouts, of a
  rollout's mean advantage on its loss tokens with its score (does credit follow the
  outcome?), and with a critic the value's explained variance of the returns on the loss
  tokens (1 - Var(R - V) / Var(R))."""
  lm = loss_mask.astype(jnp.float32)
  tokens = lm.sum(axis=1)
  has = (tokens > 0).astype(jnp.float32)
  row_adv = (advantages * lm).sum(axis=1) / jnp.maximum(tokens, 1.0)
  out = {"advantage_score_corr": _masked_corr(row_adv, score_rewards.sum(axis=1), has)}
  if uses_critic:
    n = jnp.maximum(lm.sum(), 1.0)
    def var(x):
      mean = (x * lm).sum() / n
      return (jnp.square(x - mean) * lm).sum() / n
    out["value_explained_variance"] = 1.0 - var(returns - values) / jnp.maximum(var(returns),
                                                                               1e-12)
  return out


def estimate_advantages(cfg: RLConfig, rewards, values, response_mask, loss_mask) -> tuple:
  """(advantages, returns) [B, N] by the config's estimator over the response (the
  episode's time steps), then, with a critic and `whiten_advantages`, normalised over the
  loss tokens, the ones the policy loss is on."""
  adv, returns = cfg.estimator.fn(rewards, values, response_mask, cfg)
  if cfg.uses_critic and cfg.whiten_advantages:
    adv = advantages.masked_whiten(adv, loss_mask)
  return adv, returns


def check_batch(cfg: RLConfig, rows: int, shards: int = 1) -> None:
  """The rollout batch has to split into minibatches of whole groups that divide over the
  data shards."""
  mb = rows // cfg.minibatches
  if rows % cfg.minibatches or mb % cfg.group_size or mb % shards:
    raise ValueError(f"rl: {rows} rollout rows must split into minibatches={cfg.minibatches} "
                     f"of whole groups (group_size={cfg.group_size}) that divide over "
                     f"{shards} data shards")


