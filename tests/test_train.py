import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from s2jax import checkpoints, sharding
from s2jax import train as T
from s2jax.models.transformer import ModelConfig, Transformer
from tests.helpers import random_batch, tiny_model

OPTIM = ml_collections.ConfigDict(dict(lr=1e-2, warmup_steps=1, decay_steps=10,
                                       final_lr_fraction=0.1, schedule="cosine",
                                       weight_decay=0.1, b1=0.9, b2=0.99, clip_norm=1.0))


def setup(grad_accum=1, mesh_shape=(1, 1, 1), loss=None):
  model, _, mesh = tiny_model(mesh_shape)
  opt = T.make_optimizer(OPTIM)
  state, sh = T.create_state(model, opt, jax.random.key(0), mesh)
  loss = loss or (lambda p, b: T.next_token_loss(model, p, b))
  step = T.jit_train_step(T.make_train_step(loss, opt, grad_accum), sh, mesh)
  return model, state, step, mesh


def test_loss_decreases_on_a_fixed_batch():
  _, state, step, _ = setup()
  batch = random_batch(8, 12, 64)
  losses = []
  for _ in range(20):
    state, m = step(state, batch)
    losses.append(float(m["loss"]))
  assert losses[-1] < 0.6 * losses[0]
  assert int(state.step) == 20


def test_gradient_accumulation_equals_full_batch():
  batch = random_batch(8, 12, 64, seed=1)
  _, s1, step1, _ = setup(1)
  _, s4, step4, _ = setup(4)
  for _ in range(3):
    s1, m1 = step1(s1, batch)
    s4, m4 = step4(s4, batch)
    np.testing.assert_allclose(m1["loss"], m4["loss"], rtol=1e-5)
    np.testing.assert_allclose(m1["grad_norm"], m4["grad_norm"], rtol=1e-4)
  # Adam amplifies float-rounding differences in near-zero gradients; stay well under lr.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=3e-4), s1.params, s4.params)


def test_loss_only_on_target_tokens():
  model, _, _ = tiny_model()
  _, params, _ = tiny_model()
  batch = random_batch(2, 10, 64)
  base = T.next_token_loss(model, params, batch)
  changed = dict(batch, tokens=batch["tokens"].copy())
  # Changing a prompt token that is never a target and is the last token of nothing
  # counts changes the context only; changing a non-target, non-context pad does nothing.
  changed["tokens"][~batch["mask"]] = 7
  again = T.next_token_loss(model, params, changed)
  np.testing.assert_allclose(base[0], again[0], rtol=1e-6)
  assert float(base[1]) == batch["targets"][:, 1:].sum()


def test_non_finite_loss_skips_the_update():
  model, _, _ = tiny_model()
  def nan_loss(p, b):
    s, w, m = T.next_token_loss(model, p, b)
    return s * jnp.nan, w, m
  _, state, step, _ = setup(loss=nan_loss)
  before = jax.tree.map(np.asarray, state.params)
  state, m = step(state, random_batch(4, 8, 64))
  assert not bool(m["finite"]) and int(state.step) == 0
  jax.tree.map(np.testing.assert_array_equal, before, jax.tree.map(np.asarray, state.params))


def test_checkpoint_round_trip_and_keep_n(tmp_path):
  _, state, step, _ = setup()
  batch = random_batch(4, 8, 64)
  ck = checkpoints.Checkpointer(str(tmp_path / "ck"), keep=2, every=1)
  for _ in range(3):
    state, _ = step(state, batch)
    T.save_state(ck, state)
  ck.wait()
  assert ck.all_steps() == [2, 3]
  _, fresh, _, _ = setup()
  restored = T.restore_state(ck, fresh)
  assert int(restored.step) == 3
  jax.tree.map(np.testing.assert_array_equal, state.params, restored.params)
  ck.close()


def test_wrong_shape_checkpoint_names_the_parameter(tmp_path):
  _, state, _, _ = setup()
  ck = checkpoints.Checkpointer(str(tmp_path / "ck"))
  T.save_state(ck, state, force=True)
  ck.wait()
  other, _, mesh = tiny_model(mlp_dim=96)
  opt = T.make_optimizer(OPTIM)
  wrong, _ = T.create_state(other, opt, jax.random.key(0), mesh)
  with pytest.raises(ValueError, match=r"layers/mlp/w_gate: checkpoint has shape \(2, 32, 64\), "
                                       r"model expects \(2, 32, 96\)"):
    T.restore_state(ck, wrong)
  ck.close()


def test_optimizer_schedule_and_clipping():
  opt = T.make_optimizer(OPTIM)
  params = {"w": jnp.ones((3, 3)), "b": jnp.ones((3,))}
  st = opt.init(params)
  huge = {"w": jnp.full((3, 3), 1e6), "b": jnp.full((3,), 1e6)}
  upd, _ = opt.update(huge, st, params)
  assert np.all(np.isfinite(upd["w"]))
  with pytest.raises(ValueError, match="schedule"):
    T.make_optimizer(ml_collections.ConfigDict({**OPTIM.to_dict(), "schedule": "zigzag"}))


def test_batch_order_is_a_pure_function_of_the_step():
  from s2jax.data import batches
  lengths = np.random.default_rng(0).integers(10, 200, 100)
  steps = range(40)
  ordered = [batches.batch_order(100, 8, 3, lengths=lengths, window=4)[s] for s in steps]
  fresh = batches.batch_order(100, 8, 3, lengths=lengths, window=4)  # a resumed run
  for s in reversed(steps):  # any access order gives the same batch
    assert np.array_equal(fresh[s], ordered[s])
  # Plain order: each run of 100 indices (an epoch) is a permutation, epochs differ.
  plain = np.concatenate([batches.batch_order(100, 8, 3)[s] for s in range(25)])
  assert sorted(plain[:100]) == sorted(plain[100:]) == list(range(100))
  assert not np.array_equal(plain[:100], plain[100:])
  assert not np.array_equal(batches.batch_order(100, 8, 4)[0], batches.batch_order(100, 8, 3)[0])
  # A window of bucketed batches holds exactly the plain order's pool of 32.
  for g in range(10):
    pool = batches.batch_order(100, 32, 3)[g]
    assert sorted(np.concatenate(ordered[4 * g:4 * g + 4])) == sorted(pool)
  # Bucketing really narrows the length spread within a batch.
  spread = lambda w: np.mean([np.ptp(lengths[batches.batch_order(100, 8, 3, lengths=lengths,
                                                                 window=w)[s]]) for s in steps])
  assert spread(4) < 0.6 * spread(1)
  assert np.array_equal(batches.batch_order(100, 8, 3, lengths=lengths, window=1)[5],
                        batches.batch_order(100, 8, 3)[5])
  with pytest.raises(ValueError, match="no examples"):
    batches.batch_order(0, 8, 3)
  with pytest.raises(ValueError, match="99 lengths for 100 examples"):
    batches.batch_order(100, 8, 3, lengths=lengths[:99], window=4)

@pytest.mark.parametrize("scan", [True, False])
@pytest.mark.parametrize("layers", [1, 4])
@pytest.mark.parametrize("decay_embeddings", [True, False])
def test_weight_decay_by_parameter_path(scan, layers, decay_embeddings):
  """One AdamW step with zero gradients moves nothing but the decay: a decayed parameter
  becomes p * (1 - lr * wd) exactly, every other one stays. Matrices decay; norm scales and
  biases never do, scanned ([L, d]) or not, with one layer or four; embeddings as set."""
  cfg = ModelConfig(vocab_size=32, d_model=16, n_layers=layers, n_heads=2, n_kv_heads=1,
                    mlp_dim=32, qkv_bias=True, tie_embeddings=False, scalar_head=True,
                    scan_layers=scan)
  mesh = sharding.make_mesh((1, 1, 1), jax.devices()[:1])
  params, _ = sharding.init_params(Transformer(cfg), jax.random.key(0), mesh)
  params = jax.tree.map(lambda p: p + 1.0, params)  # biases start at 0: make them visible
  lr, wd = 0.1, 0.5
  opt = T.make_optimizer(ml_collections.ConfigDict(dict(
      lr=lr, warmup_steps=0, decay_steps=10, final_lr_fraction=1.0, schedule="constant",
      weight_decay=wd, b1=0.9, b2=0.99, clip_norm=1.0, decay_embeddings=decay_embeddings)))
  updates, _ = opt.update(jax.tree.map(jnp.zeros_like, params), opt.init(params), params)
  new = optax.apply_updates(params, updates)
  flat_old = flax.traverse_util.flatten_dict(params, sep="/")
  flat_new = flax.traverse_util.flatten_dict(new, sep="/")
  matrices = {"wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down", "lm_head", "scalar_head"}
  seen = set()
  for path, old in flat_old.items():
    name = path.split("/")[-1]
    seen.add(name)
    want = (name in matrices) or (name == "embedding" and decay_embeddings)
    factor = (1 - lr * wd) if want else 1.0
    np.testing.assert_allclose(np.asarray(flat_new[path]), np.asarray(old) * factor,
                               rtol=1e-6, err_msg=path)
  # The model has every kind the rule must handle.
  assert {"scale", "bq", "bk", "bv", "scalar_bias", "embedding"} <= seen


def test_fit_logs_the_tokens_and_positions_it_trained_on(tmp_path):
  from s2jax.metrics import MetricWriter, latest_per_step, read_metrics
  _, state, step, _ = setup()
  shapes = [(4, 8), (6, 12), (4, 16), (8, 8), (4, 12)]  # a batch shape per step
  batches = [random_batch(b, t, 64, seed=i) for i, (b, t) in enumerate(shapes)]
  ck = checkpoints.Checkpointer(str(tmp_path / "ck"), keep=2, every=100)
  T.fit(state, step, lambda s: batches[s], steps=5, ckpt=ck, writer=MetricWriter(str(tmp_path)),
        log_every=2, desc="count")
  ck.close()
  lines = latest_per_step([m for m in read_metrics(str(tmp_path / "metrics.jsonl"))
                           if "loss" in m])
  assert [m["step"] for m in lines] == [2, 4, 5]
  assert sum(m["trained_tokens"] for m in lines) == sum(int(b["mask"].sum()) for b in batches)
  assert sum(m["trained_positions"] for m in lines) == sum(b * t for b, t in shapes)
  assert lines[0]["trained_positions"] == 4 * 8 + 6 * 12  # the steps since the last line


def test_packed_batch_gives_the_padded_batch_loss_and_gradients():
  """The same examples packed several to a row (positions restart, segment ids) give the
  padded batch's summed loss, target count and gradients."""
  from s2jax.data import batches
  model, params, _ = tiny_model()
  rng = np.random.default_rng(3)
  examples = []
  for n_prompt, n_completion in [(3, 5), (2, 9), (4, 2), (5, 6), (2, 3), (3, 11)]:
    ids = rng.integers(4, 64, n_prompt + n_completion).tolist()
    mask = None if n_completion < 6 else [bool(i % 3) for i in range(n_completion)]
    examples.append(batches.Example(ids[:n_prompt], ids[n_prompt:], mask))
  padded = batches.make_batch(examples, 16, pad_id=0)
  packed = batches.make_packed_batch(examples, 20, pad_id=0, rows_multiple=2)
  assert packed["tokens"].shape[0] < len(examples)  # it did pack
  loss = lambda p, b: T.next_token_loss(model, p, b)[0]
  (l_pad, g_pad), (l_pack, g_pack) = (jax.value_and_grad(loss)(params, b)
                                      for b in (padded, packed))
  np.testing.assert_allclose(l_pack, l_pad, rtol=1e-5)
  assert (float(T.next_token_loss(model, params, packed)[1])
          == float(T.next_token_loss(model, params, padded)[1]))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               g_pack, g_pad)


def test_packed_lm_batches_hold_the_same_examples_as_padded_ones():
  import types
  from s2jax.data import batches
  rng = np.random.default_rng(0)
  examples = [batches.Example(rng.integers(4, 60, rng.integers(2, 6)).tolist(),
                              rng.integers(4, 60, rng.integers(1, 20)).tolist())
              for _ in range(40)]
  mesh = sharding.make_mesh((1, 1, 1), jax.devices()[:1])
  tok = types.SimpleNamespace(pad_id=0)
  kw = dict(batch_size=8, seed=1, pad_multiple=8, seq_len=32, bucket_window=2)
  padded = T.lm_batches(examples, tok, mesh, **kw)
  packed = T.lm_batches(examples, tok, mesh, pack=True, grad_accum=2, **kw)

  def docs(batch, pack):
    toks, mask = np.asarray(batch["tokens"]), np.asarray(batch["mask"])
    if not pack:
      return sorted(tuple(t[m]) for t, m in zip(toks, mask))
    seg = np.asarray(batch["segments"])
    return sorted(tuple(toks[seg == s]) for s in np.unique(seg[seg > 0]))

  for step in (0, 3, 11):
    a, b = padded(step), packed(step)
    assert docs(a, False) == docs(b, True)
    assert b["tokens"].shape[1] == 32 and b["tokens"].shape[0] % 2 == 0
    assert np.asarray(b["targets"]).sum() == np.asarray(a["targets"]).sum()
