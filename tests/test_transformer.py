import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s2jax.models.transformer import ModelConfig, Transformer, forward
from tests.helpers import TINY, random_batch, tiny_model


def test_output_shapes_and_heads():
  model, params, _ = tiny_model(scalar_head=True, qkv_bias=True)
  batch = random_batch(3, 10, 64)
  out = forward(model, params, batch["tokens"], batch["mask"])
  assert out.logits.shape == (3, 10, 64) and out.logits.dtype == jnp.float32
  assert out.scalars.shape == (3, 10)
  assert "bq" in params["layers"]["attn"] and "scalar_head" in params
  n = sum(x.size for x in jax.tree.leaves(params))
  assert n == model.cfg.num_params()


def test_scalar_only_model_has_no_lm_head():
  model, params, _ = tiny_model(lm_head=False, scalar_head=True)
  out = forward(model, params, jnp.ones((2, 5), jnp.int32), jnp.ones((2, 5), bool))
  assert out.logits is None and out.scalars.shape == (2, 5)
  assert "lm_head" not in params


def test_tied_embeddings_share_the_matrix():
  model, params, _ = tiny_model(tie_embeddings=True)
  assert "lm_head" not in params
  x = jnp.ones((1, 3), jnp.int32)
  out = forward(model, params, x, jnp.ones((1, 3), bool))
  p2 = dict(params, embedding=params["embedding"] * 2)
  out2 = forward(model, p2, x, jnp.ones((1, 3), bool))
  assert not np.allclose(out.logits, out2.logits)


def test_causality_and_padding_invariance():
  """Right padding does not change real positions' logits; future tokens do not leak."""
  model, params, _ = tiny_model()
  toks = jnp.asarray([[5, 6, 7, 8, 9, 10]], jnp.int32)
  full = forward(model, params, toks, jnp.ones((1, 6), bool)).logits
  padded = jnp.concatenate([toks, jnp.zeros((1, 3), jnp.int32)], axis=1)
  mask = jnp.asarray([[1] * 6 + [0] * 3], bool)
  out = forward(model, params, padded, mask).logits
  np.testing.assert_allclose(out[:, :6], full, atol=1e-5)
  changed = toks.at[0, 4].set(20)
  out2 = forward(model, params, changed, jnp.ones((1, 6), bool)).logits
  np.testing.assert_allclose(out2[:, :4], full[:, :4], atol=1e-5)


def test_left_padding_with_positions_matches_unpadded():
  model, params, _ = tiny_model()
  toks = jnp.asarray([[5, 6, 7, 8]], jnp.int32)
  full = forward(model, params, toks, jnp.ones((1, 4), bool)).logits
  lp = jnp.asarray([[0, 0, 5, 6, 7, 8]], jnp.int32)
  mask = jnp.asarray([[0, 0, 1, 1, 1, 1]], bool)
  out = forward(model, params, lp, mask).logits
  np.testing.assert_allclose(out[:, 2:], full, atol=1e-5)


@pytest.mark.parametrize("remat", ["full", "dots"])
def test_remat_gives_same_loss_and_grads(remat):
  batch = random_batch(2, 8, 64)
  def loss(model, params):
    out = forward(model, params, batch["tokens"], batch["mask"])
    return jnp.mean(jax.nn.logsumexp(out.logits, -1))
  m0, p0, _ = tiny_model()
  m1, _, _ = tiny_model(remat=remat)
  g0 = jax.grad(lambda p: loss(m0, p))(p0)
  g1 = jax.grad(lambda p: loss(m1, p))(p0)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), g0, g1)


@pytest.mark.parametrize("option", [dict(scan_unroll=0), dict(fused_qkv=True),
                                    dict(fused_mlp=True, qkv_bias=True, fused_qkv=True)])
def test_compute_layout_options_give_the_same_logits_and_grads(option):
  # Unrolling the layer scan and fusing projections change how the same arithmetic is laid
  # out, never the parameters: one set of weights serves both models.
  batch = random_batch(2, 8, 64)
  bias = {"qkv_bias": True} if option.get("qkv_bias") else {}
  m0, p0, _ = tiny_model(**bias)
  m1, p1, _ = tiny_model(**option)
  assert jax.tree.map(jnp.shape, p0) == jax.tree.map(jnp.shape, p1)
  if bias:  # non-zero biases, so the fused path's bias split is checked too
    p0 = jax.tree_util.tree_map_with_path(
        lambda path, x: x + 0.1 if path[-1].key in ("bq", "bk", "bv") else x, p0)
  def loss(model, params):
    out = forward(model, params, batch["tokens"], batch["mask"])
    return jnp.sum(out.logits * jnp.arange(64) / 64.0)
  np.testing.assert_allclose(forward(m1, p0, batch["tokens"], batch["mask"]).logits,
                             forward(m0, p0, batch["tokens"], batch["mask"]).logits, atol=1e-5)
  g0 = jax.grad(lambda p: loss(m0, p))(p0)
  g1 = jax.grad(lambda p: loss(m1, p))(p0)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), g0, g1)


def test_bf16_compute_keeps_fp32_params_and_is_close():
  m32, params, _ = tiny_model()
  m16 = Transformer(ModelConfig(**{**TINY, "dtype": "bfloat16"}))
  batch = random_batch(2, 8, 64)
  a = forward(m32, params, batch["tokens"], batch["mask"]).logits
  b = forward(m16, params, batch["tokens"], batch["mask"]).logits
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))
  assert b.dtype == jnp.float32
  np.testing.assert_allclose(a, b, atol=0.05)


@pytest.mark.parametrize("bad,match", [
    (dict(n_heads=3), "n_heads"),
    (dict(d_model=30, n_heads=4), "d_model"),
    (dict(dtype="float8"), "dtype"),
    (dict(remat="sometimes"), "remat"),
    (dict(scan_unroll=-1), "scan_unroll"),
    (dict(scan_unroll=TINY["n_layers"] + 1), "scan_unroll"),
    (dict(vocab_size=0), "vocab_size"),
    (dict(lm_head=False, scalar_head=False), "lm_head"),
])
def test_bad_model_config_names_the_key(bad, match):
  with pytest.raises(ValueError, match=match):
    ModelConfig(**{**TINY, **bad})
