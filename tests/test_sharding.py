"""Losses, gradients and generated tokens on several meshes equal the single-device run."""
import jax
import numpy as np
import pytest

from s2jax import sharding
from s2jax import train as T
from s2jax.sampling import Sampler
from tests.helpers import random_batch, tiny_model
from tests.test_train import OPTIM

MESHES = [(8, 1, 1), (2, 2, 2), (1, 1, 8), (1, 8, 1)]


def run(mesh_shape, steps=3):
  model, _, mesh = tiny_model(mesh_shape, n_heads=8, n_kv_heads=2, d_model=64)
  opt = T.make_optimizer(OPTIM)
  state, sh = T.create_state(model, opt, jax.random.key(0), mesh)
  step = T.jit_train_step(T.make_train_step(lambda p, b: T.next_token_loss(model, p, b), opt),
                          sh, mesh)
  raw = random_batch(8, 16, 64, seed=2)
  batch = {k: sharding.global_batch(v, mesh) for k, v in raw.items()}
  grads = jax.grad(lambda p: T.next_token_loss(model, p, batch)[0])(state.params)
  losses = []
  for _ in range(steps):
    state, m = step(state, batch)
    losses.append(float(m["loss"]))
  sampler = Sampler(model, pad_id=0, eos_id=63, max_cache_len=32)
  gen = sampler(state.params, [[5, 6, 7], [8, 9], [10, 11, 12, 13], [4]] * 2, max_new_tokens=8,
                batch_sharding=sharding.batch_sharding(mesh, 2, 8))
  # Refilled rows (an eighth of the batch, rounded to the data shards, at a time).
  refilled = sampler.generate_all(state.params, [[5, 6, 7], [8, 9], [10, 11, 12, 13], [4]] * 3,
                                  batch_size=8, max_new_tokens=8, refill=True,
                                  batch_sharding=sharding.batch_sharding(mesh, 2, 8))
  return losses, jax.tree.map(np.asarray, grads), (gen.tokens, refilled), state


@pytest.fixture(scope="module")
def reference():
  return run((1, 1, 1))


@pytest.mark.parametrize("mesh_shape", MESHES)
def test_mesh_matches_single_device(reference, mesh_shape):
  losses, grads, tokens, state = run(mesh_shape)
  np.testing.assert_allclose(losses, reference[0], rtol=2e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), grads,
               reference[1])
  np.testing.assert_array_equal(tokens[0], reference[2][0])
  assert tokens[1] == reference[2][1]
  # The parameters really are distributed as the mesh asks.
  w = state.params["layers"]["mlp"]["w_gate"]
  if mesh_shape[2] == 8:
    assert w.sharding.spec[2] == "tensor"
  if mesh_shape[1] == 8:
    assert w.sharding.spec[1] == "fsdp"
  assert len(w.sharding.device_set) == 8
  adam_mu = state.opt_state[1][0].mu["layers"]["mlp"]["w_gate"]
  assert adam_mu.sharding.is_equivalent_to(w.sharding, w.ndim)


def test_non_dividing_axes_fall_back_to_replication():
  mesh = sharding.make_mesh((1, 1, 8))
  s = sharding.logical_sharding(("embed", "kv_heads", "head_dim"), (64, 2, 8), mesh)
  assert s.spec[1] is None  # 2 KV heads cannot split 8 ways
  s = sharding.logical_sharding(("embed", "heads", "head_dim"), (64, 8, 8), mesh)
  assert s.spec[1] == "tensor"


def test_mesh_shape_errors():
  with pytest.raises(ValueError, match="needs 16 devices"):
    sharding.make_mesh((4, 4, 1))
  with pytest.raises(ValueError, match="3 entries"):
    sharding.make_mesh((8, 1))
  assert sharding.make_mesh((-1, 2, 1)).shape["data"] == 4
