"""RL kernels against hand-made cases and plain NumPy, and a toy objective PPO must improve."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from s2jax import rl, sharding
from s2jax import train as train_lib
from s2jax.models.transformer import ModelConfig, Transformer
from s2jax.rl.learner import AdaptiveKL, hacking_alarm
from s2jax.sampling import Sampler, SamplingConfig


def numpy_gae(rewards, values, mask, gamma, lam):
  b, n = rewards.shape
  adv = np.zeros((b, n))
  for i in range(b):
    length = int(mask[i].sum())
    last = 0.0
    for t in reversed(range(length)):
      next_v = values[i, t + 1] if t + 1 < length else 0.0
      delta = rewards[i, t] + gamma * next_v - values[i, t]
      last = delta + gamma * lam * last
      adv[i, t] = last
  return adv, (adv + values) * mask


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.9, 0.5), (1.0, 1.0), (0.99, 0.0)])
def test_gae_matches_numpy(gamma, lam):
  rng = np.random.default_rng(0)
  b, n = 5, 9
  lengths = np.array([9, 1, 4, 0, 7])
  mask = np.arange(n)[None] < lengths[:, None]
  rewards = rng.normal(size=(b, n)) * mask
  values = rng.normal(size=(b, n)) * mask
  adv, ret = rl.gae(jnp.asarray(rewards, jnp.float32), jnp.asarray(values, jnp.float32),
                    jnp.asarray(mask), gamma, lam)
  want_adv, want_ret = numpy_gae(rewards, values, mask, gamma, lam)
  np.testing.assert_allclose(np.asarray(adv), want_adv, atol=1e-5)
  np.testing.assert_allclose(np.asarray(ret), want_ret, atol=1e-5)


def test_gae_lambda_one_is_discounted_return_minus_value():
  rewards = np.array([[0.0, 0.0, 1.0, 0.0]], np.float32)
  values = np.array([[0.3, 0.1, -0.2, 0.0]], np.float32)
  mask = np.array([[True, True, True, False]])
  adv, ret = rl.gae(rewards, values, mask, 1.0, 1.0)
  np.testing.assert_allclose(np.asarray(ret), [[1.0, 1.0, 1.0, 0.0]], atol=1e-6)
  np.testing.assert_allclose(np.asarray(adv), [[0.7, 0.9, 1.2, 0.0]], atol=1e-6)


@pytest.mark.parametrize("ratio,adv,want_loss,want_grad", [
    (1.5, 1.0, -1.2, 0.0),    # A > 0, ratio above 1 + eps: clipped, no gradient
    (0.5, 1.0, -0.5, -0.5),   # A > 0, ratio below 1 - eps: unclipped side is the minimum
    (0.5, -1.0, 0.8, 0.0),    # A < 0, ratio below 1 - eps: clipped, no gradient
    (1.5, -1.0, 1.5, 1.5),    # A < 0, ratio above 1 + eps: unclipped, pushed back down
    (1.1, 2.0, -2.2, -2.2),   # inside the trust region: plain ratio * A
])
def test_clipped_pg_loss_and_gradient(ratio, adv, want_loss, want_grad):
  old = jnp.float32(-1.0)
  f = lambda lp: rl.clipped_pg_loss(lp, old, jnp.float32(adv), 0.2)[0]
  logp = old + jnp.log(jnp.float32(ratio))
  np.testing.assert_allclose(float(f(logp)), want_loss, rtol=1e-5)
  # d/dlogp of -ratio * A is -ratio * A where unclipped, 0 where clipped.
  np.testing.assert_allclose(float(jax.grad(f)(logp)), want_grad, rtol=1e-5, atol=1e-7)


def test_clipped_value_loss_takes_the_pessimistic_branch():
  old, ret = jnp.float32(0.0), jnp.float32(1.0)
  # V moved 0.5 towards the return, beyond the 0.2 clip: the clipped value (0.2) is further
  # from the return, so its error counts.
  np.testing.assert_allclose(float(rl.clipped_value_loss(jnp.float32(0.5), old, ret, 0.2)),
                             0.5 * 0.8 ** 2, rtol=1e-6)
  # Moving away from the return is never clipped away.
  np.testing.assert_allclose(float(rl.clipped_value_loss(jnp.float32(-0.5), old, ret, 0.2)),
                             0.5 * 1.5 ** 2, rtol=1e-6)


def test_kl_estimators_agree_with_exact_kl():
  p = jnp.array([0.5, 0.3, 0.15, 0.05])
  q = jnp.array([0.25, 0.25, 0.25, 0.25])
  exact = float(jnp.sum(p * (jnp.log(p) - jnp.log(q))))
  tokens = jax.random.categorical(jax.random.key(0), jnp.log(p), shape=(200_000,))
  logp, logq = jnp.log(p)[tokens], jnp.log(q)[tokens]
  k1 = rl.kl_penalty(logp, logq, "k1")
  k2 = rl.kl_penalty(logp, logq, "k2")
  k3 = rl.kl_penalty(logp, logq, "k3")
  assert abs(float(k1.mean()) - exact) < 0.01
  assert abs(float(k3.mean()) - exact) < 0.01
  assert float(k3.min()) >= 0.0 and float(k1.min()) < 0.0  # k3 is never negative, k1 can be
  np.testing.assert_allclose(float(k2.mean()), float(0.5 * jnp.mean(jnp.square(logp - logq))),
                             rtol=1e-5)
  assert float(k1.std()) > float(k3.std())  # the reason k3 exists
  with pytest.raises(ValueError, match="KL estimator"):
    rl.kl_penalty(logp, logq, "k4")


def test_group_advantages():
  r = jnp.array([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0])
  grpo = np.asarray(rl.group_advantages(r, 4, "grpo"))
  np.testing.assert_allclose(grpo[:4], [1.0, -1.0, -1.0, 1.0], atol=1e-5)
  np.testing.assert_allclose(grpo[4:], 0.0, atol=1e-6)  # no signal from an all-equal group
  rloo = np.asarray(rl.group_advantages(r, 4, "rloo"))
  # RLOO: each return minus the mean of the other three.
  want = [1 - 1 / 3, 0 - 2 / 3, 0 - 2 / 3, 1 - 1 / 3, 0, 0, 0, 0]
  np.testing.assert_allclose(rloo, want, atol=1e-6)
  with pytest.raises(ValueError):
    rl.RLConfig(algorithm="grpo", group_size=1)


def test_response_steps_and_reward_placement():
  class Tok:
    eos_id, step_end_id, vocab_size = 2, 3, 11
    def decode(self, ids):
      return " ".join({7: "A", 8: "B", 9: "####", 10: "\n"}.get(i, "?") for i in ids)
  #            A  nl nl  B  nl ####  nl  A  eos
  ids = [7, 3, 3, 8, 3, 9, 3, 7, 2]
  tok = Tok()
  steps, ends = rl.response_steps(tok, ids, lambda text: text.startswith("####"))
  assert steps == ["A", "B"] and ends == [1, 4]  # the empty line is not a step
  # A sampled newline that is not the end-of-step token (a byte-fallback piece) still ends
  # the step: the PRM's steps are lines.
  lines, line_ends = rl.response_steps(tok, [7, 10, 8, 3, 9, 2],
                                      lambda t: t.startswith("####"))
  assert lines == ["A", "B"] and line_ends == [1, 3]
  out = rl.place_rewards(10, [9, 0], [ends, []], [np.array([0.5, -0.25]), np.zeros(0)],
                         np.array([1.0, 1.0]), step_weight=2.0, outcome_weight=3.0)
  want = np.zeros((2, 10), np.float32)
  want[0, 1], want[0, 4], want[0, 8] = 1.0, -0.5, 3.0
  np.testing.assert_allclose(out, want)  # an empty response gets no outcome reward


def test_step_reward_transforms():
  p = np.array([0.2, 0.9])
  np.testing.assert_allclose(rl.step_reward(p, "centered"), [-0.3, 0.4], atol=1e-6)
  np.testing.assert_allclose(rl.step_reward(p, "delta"), [-0.8, 0.7], atol=1e-6)
  np.testing.assert_allclose(rl.step_reward(p, "log"), np.log(p), atol=1e-6)
  with pytest.raises(ValueError, match="step_transform"):
    rl.step_reward(p, "square")


def _curves(rng, iterations, reward, accuracy, noise):
  """Per-iteration means of a reward and an accuracy over 32 rollouts: a trend plus the
  binomial noise of 32 draws (accuracy) and Gaussian noise of the same size (reward)."""
  t = np.linspace(0, 1, iterations)
  acc = rng.binomial(32, np.clip(accuracy(t), 0, 1)) / 32
  return reward(t) + noise * rng.standard_normal(iterations), acc


def test_hacking_alarm_on_synthetic_curves():
  rng = np.random.default_rng(0)
  fired = {"hacked": 0, "flat": 0, "improving": 0, "reward_only": 0}
  runs = 200
  for _ in range(runs):
    # reward 0.1 -> 0.4 while accuracy 0.6 -> 0.3 over the last two windows
    r, a = _curves(rng, 10, lambda t: 0.1 + 0.3 * (t > 0.5), lambda t: 0.6 - 0.3 * (t > 0.5),
                   0.03)
    fired["hacked"] += hacking_alarm(r, a, window=5)
    r, a = _curves(rng, 10, lambda t: 0.2 + 0 * t, lambda t: 0.5 + 0 * t, 0.05)
    fired["flat"] += hacking_alarm(r, a, window=5)
    r, a = _curves(rng, 10, lambda t: 0.1 + 0.3 * t, lambda t: 0.3 + 0.3 * t, 0.03)
    fired["improving"] += hacking_alarm(r, a, window=5)
    # reward 0.07 -> 0.21 with flat accuracy: the verifier is pleased, the answers no worse
    r, a = _curves(rng, 10, lambda t: 0.07 + 0.14 * (t > 0.5), lambda t: 0.4 + 0 * t, 0.03)
    fired["reward_only"] += hacking_alarm(r, a, window=5)
  assert fired["hacked"] / runs > 0.95
  # two one-sided tests at 0.05 on independent noise: ~0.05 * 0.05 false alarms
  assert fired["flat"] / runs < 0.03
  assert fired["improving"] == 0
  assert fired["reward_only"] / runs < 0.1
  # an accuracy drop of 0.02 (a fixed tolerance's threshold) is inside the noise of 32
  # rollouts per iteration, so it does not fire
  drop = [0.52, 0.48, 0.5, 0.53, 0.47] + [0.5, 0.46, 0.49, 0.44, 0.51]
  assert not hacking_alarm([0.1] * 4 + [0.12] + [0.5, 0.52, 0.49, 0.51, 0.5], drop, window=5)
  assert not hacking_alarm([0.1, 0.5, 0.6], [0.5, 0.1, 0.1], window=2)  # too little history
  assert not hacking_alarm([0.1] * 4, [0.5] * 4, window=1)  # no noise estimate from one value


def test_adaptive_kl_moves_towards_target():
  c = AdaptiveKL(0.1, target=1.0, horizon=100)
  assert c.update(kl=5.0, n_sequences=10) > 0.1
  c2 = AdaptiveKL(0.1, target=1.0, horizon=100)
  assert c2.update(kl=0.1, n_sequences=10) < 0.1
  assert AdaptiveKL(0.1).update(5.0, 10) == 0.1  # no target: fixed


def test_check_batch():
  rl.check_batch(rl.RLConfig(algorithm="grpo", group_size=4, minibatches=2), 16, shards=2)
  with pytest.raises(ValueError, match="whole groups"):
    rl.check_batch(rl.RLConfig(algorithm="grpo", group_size=4, minibatches=4), 8)


TARGET = 5  # the toy objective: +1 for every generated TARGET token


def _toy_run(cfg: rl.RLConfig, iterations: int, shared_trunk: bool = True):
  vocab, n_new = 16, 6
  mcfg = ModelConfig(vocab_size=vocab, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1,
                     mlp_dim=64, scalar_head=cfg.uses_critic and shared_trunk)
  policy = Transformer(mcfg)
  value = None
  mesh = sharding.make_mesh((1, 1, 1), jax.devices()[:1])
  pparams, _ = sharding.init_params(policy, jax.random.key(0), mesh)
  params = {"policy": pparams}
  if cfg.uses_critic and not shared_trunk:
    value = Transformer(ModelConfig(**{**mcfg.__dict__, "lm_head": False, "scalar_head": True}))
    params["value"], _ = sharding.init_params(value, jax.random.key(1), mesh)
  ref = jax.tree.map(jnp.copy, pparams)
  opt = optax.adam(3e-3)
  state = train_lib.TrainState(step=jnp.int32(0), params=params, opt_state=opt.init(params))
  update = jax.jit(rl.make_update(policy, value, opt, cfg))
  sampler = Sampler(policy, pad_id=0, eos_id=1, max_cache_len=32)
  prompts = [[2, 3]] * 16
  rng = jax.random.key(42)
  hits = []
  for _ in range(iterations):
    rng, k1, k2 = jax.random.split(rng, 3)
    ro = rl.rollout(sampler, state.params["policy"], prompts, max_new_tokens=n_new,
                    sampling=SamplingConfig(temperature=1.0), rng=k1)
    response = ro["tokens"][:, -n_new:]
    score = ((response == TARGET) & ro["response_mask"]).astype(np.float32)
    hits.append(score.sum() / ro["response_mask"].sum())
    inputs = dict(tokens=ro["tokens"], mask=ro["mask"], response_mask=ro["response_mask"],
                  score_rewards=score, ref_params=ref, kl_coef=jnp.float32(0.0), rng=k2)
    if cfg.pack:
      inputs["packed"] = rl.rollouts.pack_update(ro["tokens"], ro["mask"], ro["response_mask"],
                                                 0, multiple=cfg.minibatches)
    state, metrics = update(state, inputs)
    assert bool(metrics["finite"])
  return hits, metrics


@pytest.mark.parametrize("cfg,shared", [
    (rl.RLConfig(algorithm="ppo", epochs=2, minibatches=2), True),
    (rl.RLConfig(algorithm="ppo", epochs=2, minibatches=2), False),
    (rl.RLConfig(algorithm="grpo", group_size=4, epochs=2, minibatches=2), True),
    (rl.RLConfig(algorithm="rloo", group_size=4, epochs=2, minibatches=2), True),
])
def test_update_increases_toy_reward(cfg, shared):
  hits, metrics = _toy_run(cfg, 12, shared)
  before, after = np.mean(hits[:3]), np.mean(hits[-3:])
  assert before < 0.25
  assert after > before + 0.3, (before, after)
  if cfg.uses_critic:
    assert "value_loss" in metrics


def _mixed_rollouts(policy, copies: int):
  """Sampled rollouts of prompts of mixed lengths (6 new tokens) and random token scores."""
  one = sharding.make_mesh((1, 1, 1), jax.devices()[:1])
  p, _ = sharding.init_params(policy, jax.random.key(0), one)
  sampler = Sampler(policy, pad_id=0, eos_id=1, max_cache_len=16)
  ro = rl.rollout(sampler, p, [[2, 3], [4], [5, 6, 7], [2]] * copies, max_new_tokens=6,
                  sampling=SamplingConfig(1.0), rng=jax.random.key(3))
  score = np.random.default_rng(0).normal(size=ro["response_mask"].shape).astype(np.float32)
  return ro, score


@pytest.mark.parametrize("mesh_shape", [(4, 2, 1), (2, 2, 2)])
def test_update_is_the_same_on_a_mesh(mesh_shape):
  """The jitted update sharded over data/fsdp/tensor gives the single-device result."""
  cfg = rl.RLConfig(algorithm="ppo", epochs=2, minibatches=2)
  mcfg = ModelConfig(vocab_size=16, d_model=32, n_layers=1, n_heads=4, n_kv_heads=2,
                     mlp_dim=64, scalar_head=True)
  policy = Transformer(mcfg)
  ro, score = _mixed_rollouts(policy, copies=4)
  opt = train_lib.make_optimizer(type("O", (), dict(
      schedule="constant", lr=1e-3, warmup_steps=0, decay_steps=1, final_lr_fraction=1.0,
      clip_norm=1.0, b1=0.9, b2=0.99, weight_decay=0.0))())
  results = []
  for shape in [(1, 1, 1), mesh_shape]:
    mesh = sharding.make_mesh(shape, jax.devices()[:int(np.prod(shape))])
    params, param_sh = sharding.init_params(policy, jax.random.key(0), mesh)
    state, state_sh = train_lib.state_for({"policy": params}, {"policy": param_sh}, opt, mesh)
    ref = jax.tree.map(jnp.copy, params)
    update = train_lib.jit_train_step(rl.make_update(policy, None, opt, cfg), state_sh, mesh)
    put = lambda x: sharding.to_global(x, sharding.batch_sharding(mesh, x.ndim, x.shape[0]))
    inputs = dict(tokens=put(ro["tokens"]), mask=put(ro["mask"]),
                  response_mask=put(ro["response_mask"]), score_rewards=put(score),
                  ref_params=ref, kl_coef=jnp.float32(0.1), rng=jax.random.key(5))
    state, m = update(state, inputs)
    results.append((jax.device_get(state.params), jax.device_get(m)))
  (p1, m1), (p2, m2) = results
  for k in ("loss", "pg_loss", "value_loss", "kl", "total_reward"):
    np.testing.assert_allclose(m1[k], m2[k], rtol=2e-4, atol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-5), p1, p2)


# ------------------------------------------------------------------ the packed update

def test_packed_rows_come_from_a_few_fixed_counts():
  # 32 rollout rows in 4 steps, minibatches x shards = 2: counts 8, 16, 24, 32.
  assert [rl.rollouts.packed_rows(32, k, 2, steps=4) for k in (1, 8, 9, 17, 25, 32)] == [
      8, 8, 16, 24, 32, 32]
  # The default 8 steps: multiples of 4.
  assert [rl.rollouts.packed_rows(32, k, 2) for k in (1, 5, 18, 32)] == [4, 8, 20, 32]
  # 6 rows, a multiple of 4: one step of 4 rows, then 8 (>= 6).
  assert [rl.rollouts.packed_rows(6, k, 4) for k in (1, 4, 5, 6)] == [4, 4, 8, 8]


def test_pack_update_maps_every_response_token_to_the_position_that_predicts_it():
  pad = 0
  prompts = [[7, 3], [4], [5, 6, 2], [9, 9]]
  responses = [[11, 12, 1], [13], [], [14, 15]]
  p, n = 3, 3
  tokens = np.zeros((4, p + n), np.int32)
  mask = np.zeros((4, p + n), bool)
  for i, (q, r) in enumerate(zip(prompts, responses)):
    tokens[i, p - len(q):p], mask[i, p - len(q):p] = q, True
    tokens[i, p:p + len(r)], mask[i, p:p + len(r)] = r, True
  resp_mask = mask[:, p:]
  out = rl.rollouts.pack_update(tokens, mask, resp_mask, pad, multiple=1)
  flat_tokens = out["tokens"].reshape(-1)
  seen = 0
  for i, r in enumerate(responses):
    for t, tok in enumerate(r):
      g = out["gather"][i, t]
      assert flat_tokens[g + 1] == tok  # the position before the token predicts it
      assert out["source"].reshape(-1)[g] == i * n + t
      seen += 1
  assert (out["source"] >= 0).sum() == seen == resp_mask.sum()
  # Every rollout lies whole in one row: its prompt without padding, then its response,
  # with positions from 0 and its own segment id.
  for i, (q, r) in enumerate(zip(prompts, responses)):
    where = np.argwhere(out["segments"] == i + 1)
    assert len(set(where[:, 0])) == 1
    row, cols = where[0, 0], where[:, 1]
    assert out["tokens"][row, cols].tolist() == q + r
    assert out["positions"][row, cols].tolist() == list(range(len(q) + len(r)))
  # 13 real tokens in rows of 6: at least 3 rows, at most the 4 unpacked ones.
  assert 3 <= out["tokens"].shape[0] <= 4


def _packed_and_plain(cfg, shared_trunk, mesh_shape=(1, 1, 1)):
  """One update of the same rollouts, unpacked and packed (sgd; metrics and new params)."""
  mcfg = ModelConfig(vocab_size=16, d_model=32, n_layers=1, n_heads=4, n_kv_heads=2,
                     mlp_dim=64, scalar_head=cfg.uses_critic and shared_trunk)
  policy = Transformer(mcfg)
  value = None
  if cfg.uses_critic and not shared_trunk:
    value = Transformer(ModelConfig(**{**mcfg.__dict__, "lm_head": False, "scalar_head": True}))
  ro, score = _mixed_rollouts(policy, copies=2)
  loss_mask = ro["response_mask"] & (np.arange(6)[None, :] != 2)  # one slot left out
  mesh = sharding.make_mesh(mesh_shape, jax.devices()[:int(np.prod(mesh_shape))])
  results = []
  for pack in (False, True):
    c = rl.RLConfig(**{**cfg.__dict__, "pack": pack})
    params, param_sh = {}, {}
    params["policy"], param_sh["policy"] = sharding.init_params(policy, jax.random.key(0), mesh)
    if value is not None:
      params["value"], param_sh["value"] = sharding.init_params(value, jax.random.key(1), mesh)
    opt = optax.sgd(0.1)
    state, state_sh = train_lib.state_for(params, param_sh, opt, mesh)
    ref, _ = sharding.init_params(policy, jax.random.key(7), mesh)
    update = train_lib.jit_train_step(rl.make_update(policy, value, opt, c), state_sh, mesh)
    put = lambda x: sharding.to_global(np.asarray(x),
                                       sharding.batch_sharding(mesh, np.ndim(x), len(x)))
    inputs = dict(tokens=put(ro["tokens"]), mask=put(ro["mask"]),
                  response_mask=put(ro["response_mask"]), score_rewards=put(score),
                  loss_mask=put(loss_mask), ref_params=ref, kl_coef=jnp.float32(0.1),
                  rng=jax.random.key(5))
    if pack:
      shards = sharding.row_shards(sharding.batch_sharding(mesh, 2))
      packed = rl.rollouts.pack_update(ro["tokens"], ro["mask"], ro["response_mask"], 0,
                                       multiple=c.minibatches * shards)
      assert packed["tokens"].shape[0] < len(ro["tokens"])  # it did pack
      inputs["packed"] = {k: put(v) for k, v in packed.items()}
    state, m = update(state, inputs)
    results.append((jax.device_get(state.params), jax.device_get(m)))
  return results


@pytest.mark.parametrize("cfg,shared", [
    (rl.RLConfig(algorithm="ppo", epochs=1, minibatches=1), True),
    (rl.RLConfig(algorithm="ppo", epochs=1, minibatches=1), False),
    (rl.RLConfig(algorithm="grpo", group_size=2, epochs=1, minibatches=1), True),
])
def test_a_packed_update_is_the_unpacked_one(cfg, shared):
  """With the whole batch as one minibatch, packing changes only the layout: the same
  loss over the same tokens, so the same metrics and the same new parameters."""
  (p1, m1), (p2, m2) = _packed_and_plain(cfg, shared)
  for k in ("loss", "pg_loss", "kl", "total_reward", "advantage_std", "approx_kl",
            "entropy") + (("value_loss",) if cfg.uses_critic else ()):
    np.testing.assert_allclose(m1[k], m2[k], rtol=2e-4, atol=1e-6, err_msg=k)
  for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_a_packed_update_on_a_mesh_is_the_unpacked_one():
  cfg = rl.RLConfig(algorithm="ppo", epochs=1, minibatches=1)
  (p1, m1), (p2, m2) = _packed_and_plain(cfg, True, mesh_shape=(2, 2, 2))
  for k in ("loss", "pg_loss", "value_loss", "kl"):
    np.testing.assert_allclose(m1[k], m2[k], rtol=2e-4, atol=1e-6, err_msg=k)
  for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_a_packed_update_improves_the_toy_reward():
  hits, _ = _toy_run(rl.RLConfig(algorithm="ppo", epochs=2, minibatches=2, pack=True), 12)
  assert np.mean(hits[-3:]) > np.mean(hits[:3]) + 0.3


def test_the_default_step_reward_does_not_pay_for_extra_steps():
  """The same confidence repeated over more steps earns the same total under the default
  transform (delta: the sum is P(last) - 1); centered pays 0.4 per step judged 0.9."""
  ctx = rl.rewards.Context()
  total = lambda probs: float(np.sum(rl.step_reward(np.array(probs), ctx.step_transform)))  # noqa: E731
  assert total([0.9]) == pytest.approx(total([0.9, 0.9, 0.9]))
  assert total([0.9, 0.3]) == pytest.approx(0.3 - 1.0)
  assert rl.step_reward(np.array([0.9, 0.9]), "centered").sum() > rl.step_reward(
      np.array([0.9]), "centered").sum()


def _toy_update_inputs(kl_coef, scores=None):
  """Sampled rollouts of a toy policy, a reference that differs from it, and a loss mask
  that leaves every other response token out (as tool-written tokens are)."""
  mcfg = ModelConfig(vocab_size=16, d_model=16, n_layers=1, n_heads=2, n_kv_heads=1,
                     mlp_dim=32, scalar_head=True)
  policy = Transformer(mcfg)
  mesh = sharding.make_mesh((1, 1, 1), jax.devices()[:1])
  p, _ = sharding.init_params(policy, jax.random.key(0), mesh)
  ref, _ = sharding.init_params(policy, jax.random.key(1), mesh)
  opt = optax.sgd(0.0)
  state = train_lib.TrainState(step=jnp.int32(0), params={"policy": p},
                               opt_state=opt.init({"policy": p}))
  ro = rl.rollout(Sampler(policy, pad_id=0, eos_id=1, max_cache_len=16), p, [[2, 3]] * 8,
                  max_new_tokens=6, sampling=SamplingConfig(1.0), rng=jax.random.key(0),
                  widths=(6,))
  resp = np.asarray(ro["response_mask"])
  loss_mask = resp & (np.arange(6)[None, :] % 2 == 0)
  score = np.zeros(resp.shape, np.float32) if scores is None else scores
  inputs = dict(tokens=ro["tokens"], mask=ro["mask"], response_mask=resp, loss_mask=loss_mask,
                score_rewards=score, ref_params=ref, kl_coef=jnp.float32(kl_coef),
                rng=jax.random.key(1))
  logits, _ = rl.response_logits_values(policy, None, {"policy": p}, ro["tokens"], ro["mask"], 6)
  ref_logits, _ = rl.response_logits_values(policy, None, {"policy": ref}, ro["tokens"],
                                            ro["mask"], 6)
  log_ratio = (np.asarray(rl.token_logprobs(logits, ro["tokens"][:, -6:])[0])
               - np.asarray(rl.token_logprobs(ref_logits, ro["tokens"][:, -6:])[0]))
  return policy, opt, state, inputs, log_ratio, loss_mask


def test_the_kl_penalty_counts_only_the_loss_tokens():
  """k1 KL in the reward, zero score: the total reward is exactly -coef x the log-ratio
  summed over the loss-mask tokens only, and the logged KL is its mean over those tokens."""
  policy, opt, state, inputs, log_ratio, lm = _toy_update_inputs(0.5)
  cfg = rl.RLConfig(algorithm="ppo", epochs=1, minibatches=1)
  _, m = jax.jit(rl.make_update(policy, None, opt, cfg))(state, inputs)
  want = (log_ratio * lm).sum()
  np.testing.assert_allclose(float(m["kl_per_sequence"]), want / 8, rtol=1e-4)
  np.testing.assert_allclose(float(m["total_reward"]), -0.5 * want / 8, rtol=1e-4)
  np.testing.assert_allclose(float(m["kl"]), want / lm.sum(), rtol=1e-4)
  assert abs((log_ratio * ~lm * inputs["response_mask"]).sum()) > 1e-3  # the rest differs


def test_advantages_are_whitened_over_the_loss_tokens():
  rng = np.random.default_rng(0)
  resp = np.ones((4, 6), bool)
  resp[1, 4:] = False
  lm = resp & (np.arange(6)[None, :] != 2)
  rewards = rng.normal(size=(4, 6)).astype(np.float32) * resp
  values = rng.normal(size=(4, 6)).astype(np.float32)
  cfg = rl.RLConfig(algorithm="ppo", gamma=1.0, gae_lambda=0.9)
  adv, ret = rl.kernels.estimate_advantages(cfg, jnp.asarray(rewards), jnp.asarray(values),
                                            jnp.asarray(resp), jnp.asarray(lm))
  raw, want_ret = numpy_gae(rewards, values, resp, 1.0, 0.9)
  sel = raw[lm]
  want = np.where(lm, (raw - sel.mean()) / np.sqrt(sel.var() + 1e-8), 0.0)
  np.testing.assert_allclose(np.asarray(adv), want, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(np.asarray(ret), want_ret, rtol=1e-5, atol=1e-5)


def test_grpo_puts_the_kl_in_the_loss_not_in_the_group_statistics():
  """Groups whose scores all agree carry no advantage however far the policy is from the
  reference: GRPO's KL is a loss term (the GRPO paper), so the group normalisation sees the
  score alone; with kl_in="reward" the KL's noise would become +-1 advantages."""
  scores = np.zeros((8, 6), np.float32)
  policy, opt, state, inputs, log_ratio, lm = _toy_update_inputs(0.5, scores=scores)
  grpo = rl.RLConfig(algorithm="grpo", group_size=4, epochs=1, minibatches=1)
  _, m = jax.jit(rl.make_update(policy, None, opt, grpo))(state, inputs)
  assert float(m["advantage_std"]) == 0.0
  # The loss is the KL term alone: coef x mean k1 over the loss tokens (first step: the
  # policy is the old policy, so the PPO term is zero).
  np.testing.assert_allclose(float(m["loss"]), 0.5 * (log_ratio * lm).sum() / lm.sum(),
                             rtol=1e-4)
  folded = rl.RLConfig(algorithm="grpo", group_size=4, epochs=1, minibatches=1, kl_in="reward")
  _, m = jax.jit(rl.make_update(policy, None, opt, folded))(state, inputs)
  assert float(m["advantage_std"]) > 0.5


def test_a_rollout_holds_the_samplers_generation_in_the_update_layout():
  """rollout (via layout): the prompt left-padded to the sampler's bucket, then exactly the
  generated ids of the same draw, cut to the smallest width that holds them."""
  from s2jax.sampling import left_pad
  mcfg = ModelConfig(vocab_size=16, d_model=16, n_layers=1, n_heads=2, n_kv_heads=1, mlp_dim=32)
  policy = Transformer(mcfg)
  mesh = sharding.make_mesh((1, 1, 1), jax.devices()[:1])
  p, _ = sharding.init_params(policy, jax.random.key(0), mesh)
  sampler = Sampler(policy, pad_id=0, eos_id=1, max_cache_len=32)
  prompts = [[2, 3], [4], [5, 6, 7], [2]]
  ro = rl.rollout(sampler, p, prompts, max_new_tokens=8, sampling=SamplingConfig(1.0),
                  rng=jax.random.key(4), widths=(4, 8))
  gen = sampler(p, prompts, max_new_tokens=8, rng=jax.random.key(4),
                sampling=SamplingConfig(1.0))
  n = 4 if gen.lengths.max() <= 4 else 8
  width = sampler.prompt_length(prompts, 8)
  want_prompt, _ = left_pad(prompts, width, 0)
  np.testing.assert_array_equal(ro["tokens"][:, :width], want_prompt)
  np.testing.assert_array_equal(ro["tokens"][:, width:], gen.tokens[:, :n])
  np.testing.assert_array_equal(ro["response_mask"], np.arange(n)[None] < gen.lengths[:, None])
  assert ro["responses"] == [gen.tokens[i, :gen.lengths[i]].tolist() for i in range(4)]


def test_dynamic_sampling_keeps_mixed_groups_first_then_fills():
  mixed = rl.rollouts.mixed_groups([1, 1, 0, 0, 1, 0, 0, 1], 2)
  assert mixed.tolist() == [False, False, True, True]
  draws = [np.array([False, True, False]), np.array([True, False, True])]
  assert rl.rollouts.select_groups(draws, 3) == [(0, 1), (1, 0), (1, 2)]
  # Too few mixed groups: the batch is filled with agreeing ones, in draw order.
  assert rl.rollouts.select_groups([np.array([False, True]), np.array([False, False])], 3) == [
      (0, 1), (0, 0), (1, 0)]


def test_update_diagnostics_against_numpy():
  rng = np.random.default_rng(2)
  b, n = 6, 5
  lm = rng.random((b, n)) < 0.7
  lm[2] = False                                   # a rollout with no loss token: left out
  adv = rng.normal(size=(b, n)).astype(np.float32)
  ret = rng.normal(size=(b, n)).astype(np.float32)
  val = (ret + 0.3 * rng.normal(size=(b, n))).astype(np.float32)
  score = rng.normal(size=(b, n)).astype(np.float32)
  got = rl.kernels.update_diagnostics(jnp.asarray(adv), jnp.asarray(ret), jnp.asarray(val),
                                      jnp.asarray(score), jnp.asarray(lm), True)
  rows = [i for i in range(b) if lm[i].any()]
  row_adv = [adv[i][lm[i]].mean() for i in rows]
  want_corr = np.corrcoef(row_adv, score[rows].sum(axis=1))[0, 1]
  np.testing.assert_allclose(float(got["advantage_score_corr"]), want_corr, rtol=1e-4)
  want_ev = 1 - np.var((ret - val)[lm]) / np.var(ret[lm])
  np.testing.assert_allclose(float(got["value_explained_variance"]), want_ev, rtol=1e-4)
  flat = rl.kernels.update_diagnostics(jnp.asarray(adv), jnp.asarray(ret), jnp.asarray(val),
                                       jnp.zeros((b, n)), jnp.asarray(lm), False)
  assert float(flat["advantage_score_corr"]) == 0.0 and "value_explained_variance" not in flat
