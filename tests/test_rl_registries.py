"""Adding an advantage estimator, a policy loss or a reward source is one function and one
registration; the jitted update and the learner's reward assembly then use it by name."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ml_collections import ConfigDict

from s2jax import rl
from s2jax.rl import advantages, losses, rewards
from s2jax.sampling import Sampler, SamplingConfig
from tests.helpers import frozen_rl_state, tiny_model


# A critic-free estimator that no built-in computes: each response's total reward minus the
# mean over the whole batch (REINFORCE with a batch baseline), given to every token.
@advantages.register("test_batch_baseline", uses_critic=False)
def batch_baseline(rewards_, values, mask, cfg):
  m = mask.astype(jnp.float32)
  total = rewards_.sum(axis=1)
  return (total - total.mean())[:, None] * m, jnp.zeros_like(m)


# Vanilla policy gradient: -A log p (no ratio, no clip).
@losses.register("test_vanilla_pg")
def vanilla_pg(logp, old_logp, adv, cfg):
  return -adv * logp, {"pg_loss": -adv * logp}


@rewards.register("test_steps_count", kind="outcome")
def steps_count(batch, ctx):
  return np.asarray([len(j["steps"]) for j in batch.judged], np.float32)


TOY_RL = dict(vocab_size=16, d_model=16, n_layers=1, n_heads=2, n_kv_heads=1, mlp_dim=32)


def _rollout_and_update(cfg):
  policy, p, _ = tiny_model(**TOY_RL)
  opt, state = frozen_rl_state(p)
  ro = rl.rollout(Sampler(policy, pad_id=0, eos_id=1, max_cache_len=16), p, [[2, 3]] * 4,
                  max_new_tokens=5, sampling=SamplingConfig(1.0), rng=jax.random.key(3),
                  widths=(5,))
  score = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
  inputs = dict(tokens=ro["tokens"], mask=ro["mask"], response_mask=ro["response_mask"],
                score_rewards=score, ref_params=p, kl_coef=jnp.float32(0.0),
                rng=jax.random.key(1))
  _, m = jax.jit(rl.make_update(policy, None, opt, cfg))(state, inputs)
  return ro, score, m


def test_a_registered_estimator_and_loss_drive_the_jitted_update():
  cfg = rl.RLConfig(algorithm="ppo", advantage="test_batch_baseline", loss="test_vanilla_pg",
                    epochs=1, minibatches=1)
  assert not cfg.uses_critic  # the estimator says so: no value head is built
  ro, score, m = _rollout_and_update(cfg)
  mask = ro["response_mask"].astype(np.float64)
  # NumPy: total reward per response (kl_coef=0), minus the batch mean, on every token.
  total = (score * mask).sum(axis=1)
  adv = (total - total.mean())[:, None] * mask
  np.testing.assert_allclose(float(m["advantage_std"]),
                             np.sqrt((adv ** 2).sum() / mask.sum()), rtol=1e-5)
  # No clip in this loss: its per-token diagnostics are only what it returned.
  assert "clip_fraction" not in m and "value_loss" not in m


def test_unknown_names_are_errors_that_list_the_registered_ones():
  with pytest.raises(ValueError, match="test_batch_baseline"):
    rl.RLConfig(advantage="nope")
  with pytest.raises(ValueError, match="ppo_clip"):
    rl.RLConfig(loss="nope")
  with pytest.raises(ValueError, match="registered twice"):
    advantages.register("gae", uses_critic=True)(lambda *a: a)
  with pytest.raises(ValueError, match="exact_outcome"):
    rewards.reward_sources(ConfigDict(dict(step_weight=0.0, outcome="exact",
                                           outcome_weight=1.0, sources=(("nope", 1.0),))),
                           has_prm=False)


def test_a_registered_reward_is_placed_and_weighted_with_the_built_in_ones():
  class Verdict:
    def __init__(self, ok):
      self.answer_correct = ok
  def row(steps, ends, ok):
    return {"steps": steps, "ends": ends, "verdict": Verdict(ok), "text": "", "prefix": []}
  judged = [row(["a", "b"], [2, 5], True), row(["c"], [1], False), row([], [], True)]
  cfg = ConfigDict(dict(step_weight=1.0, step_transform="centered", outcome="exact",
                        outcome_weight=2.0, sources=(("test_steps_count", 0.5),)))
  sources = rewards.reward_sources(cfg, has_prm=False)  # no PRM: no step rewards
  assert sources == [("exact_outcome", 2.0), ("test_steps_count", 0.5)]
  lengths = [7, 3, 0]
  placed = rewards.assemble(sources, rewards.Rollouts(["q"] * 3, judged), rewards.Context(),
                            num_new=8, lengths=lengths)
  want = np.zeros((3, 8), np.float32)
  want[0, 6] = 2.0 * 1 + 0.5 * 2   # both outcome rewards on the last generated token
  want[1, 2] = 2.0 * 0 + 0.5 * 1
  np.testing.assert_array_equal(placed, want)  # an empty response gets nothing


def test_a_loss_mask_keeps_tokens_in_context_but_out_of_the_loss():
  """Tool-written tokens (data.tool_tokens="mask"): the entropy the update reports is the
  mean over the loss-mask tokens only, from the same forward pass."""
  cfg = rl.RLConfig(algorithm="ppo", epochs=1, minibatches=1)
  policy, p, _ = tiny_model(**TOY_RL, scalar_head=True)
  opt, state = frozen_rl_state(p)
  ro = rl.rollout(Sampler(policy, pad_id=0, eos_id=1, max_cache_len=16), p, [[2, 3]] * 4,
                  max_new_tokens=6, sampling=SamplingConfig(1.0), rng=jax.random.key(3),
                  widths=(6,))
  resp = ro["response_mask"]
  loss_mask = resp & (np.arange(6)[None, :] % 2 == 0)
  inputs = dict(tokens=ro["tokens"], mask=ro["mask"], response_mask=resp,
                score_rewards=np.zeros((4, 6), np.float32), ref_params=p,
                kl_coef=jnp.float32(0.0), rng=jax.random.key(1))
  update = jax.jit(rl.make_update(policy, None, opt, cfg))
  _, full = update(state, inputs)
  _, same = update(state, dict(inputs, loss_mask=resp))
  _, part = update(state, dict(inputs, loss_mask=loss_mask))
  assert float(same["entropy"]) == float(full["entropy"])
  logits, _ = rl.response_logits_values(policy, None, {"policy": p}, ro["tokens"], ro["mask"], 6)
  _, entropy = rl.token_logprobs(logits, ro["tokens"][:, -6:])
  want = np.asarray(entropy)[loss_mask].mean()
  np.testing.assert_allclose(float(part["entropy"]), want, rtol=1e-5)
  assert abs(float(part["entropy"]) - float(full["entropy"])) > 1e-4



def test_response_widths_are_a_few_fixed_shapes():
  assert rl.rollouts.response_widths(160) == (64, 96, 160)  # 40 -> 64, 80 -> 96, 160
  assert rl.rollouts.response_widths(256) == (64, 128, 256)
  assert rl.rollouts.response_widths(5) == (5,)


def test_packed_updates_take_one_response_width():
  # Packed rows hold no empty slot: the budget's width costs nothing there, one shape less.
  assert rl.rollouts.update_widths(160, 0, packed=True) == (160,)
  assert rl.rollouts.update_widths(160, 0, packed=False) == (64, 96, 160)
  assert rl.rollouts.update_widths(160, 2, packed=True) == (96, 160)
  with pytest.raises(ValueError, match="response_widths"):
    rl.rollouts.update_widths(160, -1, packed=True)


def test_rollout_cuts_responses_to_the_smallest_width_that_holds_them():
  policy, p, _ = tiny_model(**TOY_RL)
  sampler = Sampler(policy, pad_id=0, eos_id=1, max_cache_len=24)
  for seed in range(4):
    ro = rl.rollout(sampler, p, [[2, 3]] * 8, max_new_tokens=12, sampling=SamplingConfig(1.0),
                    rng=jax.random.key(seed), widths=(3, 6, 12))
    longest = max(len(r) for r in ro["responses"])
    assert ro["response_mask"].shape[1] == min(w for w in (3, 6, 12) if w >= longest)
    assert ro["response_mask"].sum() == sum(len(r) for r in ro["responses"])
  with pytest.raises(ValueError, match="widest response width 6 must be max_new_tokens=12"):
    rl.rollout(sampler, p, [[2, 3]] * 8, max_new_tokens=12, sampling=SamplingConfig(1.0),
               rng=jax.random.key(0), widths=(3, 6))
