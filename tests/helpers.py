"""Small shared builders for tests."""
import jax
import jax.numpy as jnp
import numpy as np
import optax

from s2jax import sharding
from s2jax.models.transformer import ModelConfig, Transformer

TINY = dict(vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, mlp_dim=64)


def tiny_model(mesh_shape=(1, 1, 1), devices=None, seed=0, **overrides):
  cfg = ModelConfig(**{**TINY, **overrides})
  model = Transformer(cfg)
  devices = devices if devices is not None else jax.devices()[:int(np.prod(mesh_shape))]
  mesh = sharding.make_mesh(mesh_shape, devices)
  params, _ = sharding.init_params(model, jax.random.key(seed), mesh)
  return model, params, mesh


def random_batch(b, t, vocab, seed=0, min_len=4):
  rng = np.random.default_rng(seed)
  tokens = rng.integers(4, vocab, (b, t)).astype(np.int32)
  lengths = rng.integers(min_len, t + 1, b)
  mask = np.arange(t)[None, :] < lengths[:, None]
  tokens = np.where(mask, tokens, 0)
  targets = mask & (np.arange(t)[None, :] >= 2)
  return {"tokens": tokens, "mask": mask, "targets": targets}


def frozen_rl_state(policy_params):
  """(optimizer, TrainState) around {"policy": params} that an update never moves (SGD at
  rate 0), so the update's metrics describe exactly the inputs it was given."""
  from s2jax.train import TrainState
  opt = optax.sgd(0.0)
  params = {"policy": policy_params}
  return opt, TrainState(step=jnp.int32(0), params=params, opt_state=opt.init(params))

