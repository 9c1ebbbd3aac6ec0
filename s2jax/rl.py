"""On-policy RL on the shared transformer: rollouts, rewards, advantages, one jitted update.

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
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from s2jax import train as train_lib
from s2jax.models.transformer import Transformer, default_positions
from s2jax.sampling import Sampler, SamplingConfig, left_pad

ALGORITHMS = ("ppo", "grpo", "rloo")
KL_ESTIMATORS = ("k1", "k2", "k3")
STEP_TRANSFORMS = ("centered", "prob", "log")


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
  whiten_advantages: bool = True  # ppo: normalise advantages over the batch

  def __post_init__(self):
    def bad(key, why):
      raise ValueError(f"rl config: {key}={getattr(self, key)!r} {why}")
    if self.algorithm not in ALGORITHMS:
      bad("algorithm", f"must be one of {ALGORITHMS}")
    if self.kl_estimator not in KL_ESTIMATORS:
      bad("kl_estimator", f"must be one of {KL_ESTIMATORS}")
    if self.algorithm != "ppo" and self.group_size < 2:
      bad("group_size", f"must be >= 2 for {self.algorithm} (advantages compare a prompt's "
                        "samples with each other)")
    for key in ("group_size", "epochs", "minibatches"):
      if getattr(self, key) < 1:
        bad(key, "must be >= 1")
    if not 0 < self.clip_eps < 1:
      bad("clip_eps", "must be in (0, 1)")

  @property
  def uses_critic(self) -> bool:
    return self.algorithm == "ppo"


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


def rl_loss(policy, value, cfg: RLConfig, params, batch) -> tuple:
  """Sums for `train.make_train_step` over the response tokens of a minibatch."""
  n = batch["response_mask"].shape[1]
  logits, values = response_logits_values(policy, value, params, batch["tokens"],
                                          batch["mask"], n)
  logp, entropy = token_logprobs(logits, batch["response"])
  m = batch["response_mask"].astype(jnp.float32)
  pg, clipped = clipped_pg_loss(logp, batch["old_logp"], batch["advantages"], cfg.clip_eps)
  loss = pg - cfg.entropy_coef * entropy
  metrics = {"pg_loss": jnp.sum(pg * m), "entropy": jnp.sum(entropy * m),
             "clip_fraction": jnp.sum(clipped * m),
             # k3 between the minibatch's current and old policy: how far the epochs moved it
             "approx_kl": jnp.sum(kl_penalty(batch["old_logp"], logp, "k3") * m)}
  if cfg.uses_critic:
    vf = clipped_value_loss(values, batch["old_values"], batch["returns"], cfg.value_clip)
    loss = loss + cfg.vf_coef * vf
    metrics["value_loss"] = jnp.sum(vf * m)
  return jnp.sum(loss * m), jnp.sum(m), metrics


def make_update(policy: Transformer, value: Optional[Transformer], optimizer,
                cfg: RLConfig):
  """Pure `(state, inputs) -> (state, metrics)`; jit it with `train.jit_train_step`.

  inputs: tokens/mask [B, P+N], response_mask/score_rewards [B, N] (host-placed step and
  outcome rewards), ref_params (the frozen reference policy), kl_coef (scalar), rng."""
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
    if cfg.uses_critic:
      advantages, returns = gae(rewards, old_values, resp_mask, cfg.gamma, cfg.gae_lambda)
      if cfg.whiten_advantages:
        advantages = masked_whiten(advantages, resp_mask)
    else:
      seq_adv = group_advantages(rewards.sum(axis=1), cfg.group_size, cfg.algorithm)
      advantages, returns = seq_adv[:, None] * m, jnp.zeros_like(m)
      old_values = jnp.zeros_like(m)
    batch = {"tokens": tokens, "mask": mask, "response": response, "response_mask": resp_mask,
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


class AdaptiveKL:
  """The KL coefficient controller of Ziegler et al. (2019): move beta so that the
  measured KL per sequence tracks `target`; target <= 0 keeps beta fixed."""

  def __init__(self, init: float, target: float = 0.0, horizon: int = 10000):
    self.value, self.target, self.horizon = float(init), float(target), int(horizon)

  def update(self, kl: float, n_sequences: int) -> float:
    if self.target > 0:
      error = float(np.clip(kl / self.target - 1.0, -0.2, 0.2))
      self.value *= 1.0 + error * n_sequences / self.horizon
    return self.value


# ------------------------------------------------------------------ host side: rollouts

def rollout(sampler: Sampler, params, prompts: Sequence[Sequence[int]], *, max_new_tokens: int,
          sampling: SamplingConfig, rng, batch_sharding=None, trim_multiple: int = 32) -> dict:
  """Sample one response per prompt; returns host arrays in the update's layout plus the
  generated ids per row (`responses`) and whether each row stopped on its own.

  The response slots are cut to the longest response rounded up to `trim_multiple` (0:
  never cut): the update costs what the rollouts generated, not `max_new_tokens`, at the
  price of a few compiled shapes."""
  p = sampler.prompt_length(prompts, max_new_tokens)
  prompt_tokens, prompt_mask = left_pad(prompts, p, sampler.pad_id)
  gen = sampler(params, prompts, max_new_tokens=max_new_tokens, rng=rng, sampling=sampling,
                batch_sharding=batch_sharding)
  n = max_new_tokens
  if trim_multiple:
    n = min(n, max(1, -(-int(gen.lengths.max()) // trim_multiple)) * trim_multiple)
  resp_mask = np.arange(n)[None, :] < gen.lengths[:, None]
  return {"tokens": np.concatenate([prompt_tokens, gen.tokens[:, :n]], axis=1),
          "mask": np.concatenate([prompt_mask, resp_mask], axis=1),
          "response_mask": resp_mask,
          "responses": [gen.tokens[i, :gen.lengths[i]].tolist() for i in range(len(prompts))],
          "stopped": gen.stopped}


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


def step_reward(probs: np.ndarray, transform: str) -> np.ndarray:
  """A PRM's P(step correct) as a per-step reward."""
  probs = np.asarray(probs, np.float32)
  if transform == "centered":
    return probs - 0.5
  if transform == "prob":
    return probs
  if transform == "log":
    return np.log(np.clip(probs, 1e-6, 1.0))
  raise ValueError(f"rewards.step_transform={transform!r} must be one of {STEP_TRANSFORMS}")


def place_rewards(num_new: int, lengths: Sequence[int], step_ends: Sequence[Sequence[int]],
                  step_rewards: Sequence[np.ndarray], outcome: np.ndarray,
                  step_weight: float, outcome_weight: float) -> np.ndarray:
  """[B, N] token rewards: each step's reward on its end-of-step token, the outcome
  reward on the last generated token (nothing for an empty response)."""
  out = np.zeros((len(lengths), num_new), np.float32)
  for i, n in enumerate(lengths):
    if step_weight and len(step_ends[i]):
      np.add.at(out[i], np.asarray(step_ends[i], int), step_weight * np.asarray(step_rewards[i]))
    if outcome_weight and n > 0:
      out[i, n - 1] += outcome_weight * float(outcome[i])
  return out


def hacking_alarm(rewards: Sequence[float], accuracies: Sequence[float], window: int,
                  tolerance: float = 0.02) -> bool:
  """True when, over the last `window` iterations against the `window` before them, the
  verifier's reward rose while the exact checker's accuracy fell (each by > tolerance):
  the policy is learning to please the verifier, not to be right."""
  if window < 1 or len(rewards) < 2 * window or len(accuracies) < 2 * window:
    return False
  r_now, r_before = np.mean(rewards[-window:]), np.mean(rewards[-2 * window:-window])
  a_now, a_before = np.mean(accuracies[-window:]), np.mean(accuracies[-2 * window:-window])
  return bool(r_now - r_before > tolerance and a_before - a_now > tolerance)
