import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s2jax.models.transformer import KVCache, default_positions, forward
from s2jax.sampling import Sampler, SamplingConfig, filter_logits, generate_padded
from tests.helpers import tiny_model

EOS, PAD = 3, 0


def no_cache_greedy(model, params, prompt, n):
  """Greedy tokens from full forward passes, no cache: the sequence so far sits at the
  start of a fixed-width row (one compiled shape); causal attention keeps the padding
  after it out of its logits."""
  width = len(prompt) + n
  full = jax.jit(lambda t, m: forward(model, params, t, m).logits[0])
  seq = list(prompt)
  for _ in range(n):
    t = np.zeros((1, width), np.int32)
    t[0, :len(seq)] = seq
    logits = full(t, np.arange(width)[None] < len(seq))[len(seq) - 1]
    seq.append(int(jnp.argmax(logits)))
  return seq[len(prompt):]


def test_cached_decode_logits_equal_full_forward():
  model, params, _ = tiny_model(qkv_bias=True)
  toks = np.asarray([[0, 0, 5, 6, 7, 8, 9, 10, 11, 12]], np.int32)
  mask = toks != 0
  full = forward(model, params, toks, mask).logits
  # Prefill the first 6 slots, then feed the rest one at a time through the cache.
  cache = KVCache.zeros(model.cfg, 1, toks.shape[1])
  kv_mask = np.zeros_like(mask)
  kv_mask[:, :6] = mask[:, :6]
  pos = np.asarray(default_positions(mask))
  out = model.apply({"params": params}, toks[:, :6], pos[:, :6], kv_mask, cache, 0)
  np.testing.assert_allclose(out.logits[:, 2:], full[:, 2:6], rtol=1e-5, atol=1e-5)
  cache = out.cache
  for i in range(6, toks.shape[1]):
    kv_mask[:, i] = True
    out = model.apply({"params": params}, toks[:, i:i + 1], pos[:, i:i + 1], kv_mask, cache, i)
    cache = out.cache
    np.testing.assert_allclose(out.logits[:, 0], full[:, i], rtol=1e-5, atol=1e-5)


def test_greedy_same_with_and_without_cache_for_ragged_batch():
  model, params, _ = tiny_model()
  sampler = Sampler(model, pad_id=PAD, eos_id=63, max_cache_len=64)  # eos never chosen early
  prompts = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14, 15, 16, 17, 18], [4]]
  gen = sampler(params, prompts, max_new_tokens=12)
  for i, p in enumerate(prompts):
    expect = no_cache_greedy(model, params, p, 12)
    n = gen.lengths[i]
    assert list(gen.tokens[i, :n]) == expect[:n]
    if not gen.stopped[i]:
      assert n == 12


def test_shared_prefix_generates_what_the_full_prompts_do():
  model, params, _ = tiny_model()
  sampler = Sampler(model, pad_id=PAD, eos_id=63, max_cache_len=96)
  prefix = [7, 8, 9, 10, 11, 12, 13]
  rests = [[5, 6], [20, 21, 22, 23, 24], [30]]
  full = sampler(params, [prefix + r for r in rests], max_new_tokens=10)
  shared = sampler(params, rests, max_new_tokens=10, prefix=prefix)
  np.testing.assert_array_equal(shared.tokens, full.tokens)
  np.testing.assert_allclose(shared.logprobs, full.logprobs, atol=1e-5)
  outs = sampler.generate_all(params, rests, batch_size=2, max_new_tokens=10, prefix=prefix)
  assert [o[0] for o in outs] == [list(full.tokens[i, :full.lengths[i]]) for i in range(3)]


def test_common_prefix_by_hand_and_against_a_loop():
  from s2jax.sampling import common_prefix
  assert common_prefix([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 9]]) == 2
  assert common_prefix([[1, 2, 3], [1, 2, 3]]) == 2  # each prompt keeps a token of its own
  assert common_prefix([[7], [7, 8]]) == 0
  rng = np.random.default_rng(0)
  for _ in range(200):
    head = rng.integers(0, 3, size=rng.integers(0, 6)).tolist()
    ps = [head + rng.integers(0, 3, size=rng.integers(1, 5)).tolist()
          for _ in range(rng.integers(1, 4))]
    n = 0
    while n < min(map(len, ps)) - 1 and len({p[n] for p in ps}) == 1:
      n += 1
    assert common_prefix(ps) == n, ps


@pytest.mark.parametrize("sampling", [SamplingConfig(), SamplingConfig(temperature=1.0)])
def test_a_prefix_all_prompts_share_is_found_and_changes_no_token(sampling):
  """Prompts that share 9 leading tokens (a system turn) are generated with 8 of them
  (a whole multiple of shared_prefix_min=4) prefilled once; tokens and log-probs are
  those of the full prompts, in single calls and in generate_all."""
  model, params, _ = tiny_model()
  head = [7, 8, 9, 10, 11, 12, 13, 14, 15]
  prompts = [head + [5, 6], head + [20, 21, 22, 23, 24], head + [30]]
  kw = dict(pad_id=PAD, eos_id=EOS, max_cache_len=96)
  auto, off = Sampler(model, shared_prefix_min=4, **kw), Sampler(model, shared_prefix_min=0, **kw)
  assert auto._split_prefix((), prompts) == (head[:8], [[15, 5, 6], [15, 20, 21, 22, 23, 24],
                                                        [15, 30]])
  assert Sampler(model, shared_prefix_min=9, **kw)._split_prefix((), prompts) == (
      head, [[5, 6], [20, 21, 22, 23, 24], [30]])
  assert Sampler(model, shared_prefix_min=10, **kw)._split_prefix((), prompts) == ((), prompts)
  call = dict(max_new_tokens=10, sampling=sampling, rng=jax.random.key(1))
  a, b = auto(params, prompts, **call), off(params, prompts, **call)
  np.testing.assert_array_equal(a.tokens, b.tokens)
  np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-5)
  assert auto.generate_all(params, prompts, batch_size=2, **call) == \
      off.generate_all(params, prompts, batch_size=2, **call)


def test_scanned_and_per_layer_models_agree():
  import dataclasses
  from s2jax.models.transformer import Transformer, unstack_layers
  model, params, _ = tiny_model()
  flat = Transformer(dataclasses.replace(model.cfg, scan_layers=False))
  toks = np.asarray([[0, 5, 6, 7, 8]], np.int32)
  a = forward(model, params, toks, toks != 0).logits
  b = forward(flat, unstack_layers(params, model.cfg.n_layers), toks, toks != 0).logits
  np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_logprobs_are_model_logprobs():
  model, params, _ = tiny_model()
  sampler = Sampler(model, pad_id=PAD, eos_id=63, max_cache_len=32)
  prompt = [5, 6, 7]
  gen = sampler(params, [prompt], max_new_tokens=4)
  seq = prompt + list(gen.tokens[0])
  t = jnp.asarray([seq], jnp.int32)
  logp = jax.nn.log_softmax(forward(model, params, t, jnp.ones_like(t, bool)).logits[0], -1)
  for j in range(4):
    np.testing.assert_allclose(gen.logprobs[0, j], logp[len(prompt) + j - 1, seq[len(prompt) + j]],
                               atol=1e-5)


def test_stops_at_eos_and_stop_token_and_pads_after():
  model, params, _ = tiny_model()
  prompt = [5, 6, 7, 8]
  free = no_cache_greedy(model, params, prompt, 10)
  stop_tok = free[3]
  first = free.index(stop_tok)
  sampler = Sampler(model, pad_id=PAD, eos_id=63, max_cache_len=32)
  gen = sampler(params, [prompt, [9, 10]], max_new_tokens=10, stop_ids=[stop_tok])
  assert gen.stopped[0] and gen.lengths[0] == first + 1
  assert gen.tokens[0, first] == stop_tok
  assert np.all(gen.tokens[0, first + 1:] == PAD) and np.all(gen.logprobs[0, first + 1:] == 0)
  # The same token as end-of-sequence behaves the same.
  gen2 = Sampler(model, pad_id=PAD, eos_id=stop_tok, max_cache_len=32)(
      params, [prompt], max_new_tokens=10)
  assert gen2.lengths[0] == first + 1 and gen2.stopped[0]


def test_prompt_buckets_reuse_compiled_program():
  model, params, _ = tiny_model()
  sampler = Sampler(model, pad_id=PAD, eos_id=EOS, max_cache_len=64, buckets=(8, 16, 32))
  sampler(params, [[5, 6, 7]], max_new_tokens=4)
  before = generate_padded._cache_size()
  sampler(params, [[5, 6, 7, 8, 9]], max_new_tokens=4)   # same bucket (8)
  sampler(params, [[5, 6, 7, 8, 9, 1, 2]], max_new_tokens=4)
  assert generate_padded._cache_size() == before
  sampler(params, [[5] * 12], max_new_tokens=4)           # next bucket: one new program
  assert generate_padded._cache_size() == before + 1


def test_prompt_past_the_largest_bucket_uses_the_cache_room():
  # Beam search grows prompts step by step; one past the top bucket still fits the cache.
  model, params, _ = tiny_model()
  sampler = Sampler(model, pad_id=PAD, eos_id=EOS, max_cache_len=64, buckets=(8, 16))
  assert sampler.prompt_length([[5] * 20], max_new_tokens=4) == 60
  gen = sampler(params, [[5] * 20, [5, 6]], max_new_tokens=4)
  assert gen.tokens.shape == (2, 4)
  short = sampler(params, [[5, 6]], max_new_tokens=4)
  # left padding to the wider shape leaves the short prompt's greedy tokens unchanged
  assert np.array_equal(gen.tokens[1], short.tokens[0])


def test_prompt_longer_than_cache_is_a_clear_error():
  model, params, _ = tiny_model()
  sampler = Sampler(model, pad_id=PAD, eos_id=EOS, max_cache_len=16)
  with pytest.raises(ValueError, match="exceeds the cache length 16"):
    sampler(params, [[5] * 14], max_new_tokens=4)
  with pytest.raises(ValueError, match="empty"):
    sampler(params, [[]], max_new_tokens=4)


def test_filter_logits_top_k_top_p():
  logits = jnp.log(jnp.asarray([[0.5, 0.3, 0.15, 0.05]]))
  k2 = filter_logits(logits, SamplingConfig(temperature=1.0, top_k=2))
  assert np.isfinite(np.asarray(k2) > -1e30).all()
  assert (np.asarray(k2)[0, 2:] < -1e30).all() and (np.asarray(k2)[0, :2] > -1e30).all()
  p = filter_logits(logits, SamplingConfig(temperature=1.0, top_p=0.7))
  assert (np.asarray(p)[0, :2] > -1e30).all() and (np.asarray(p)[0, 2:] < -1e30).all()
  p = filter_logits(logits, SamplingConfig(temperature=1.0, top_p=0.5))
  assert (np.asarray(p)[0, :1] > -1e30).all() and (np.asarray(p)[0, 1:] < -1e30).all()


def _chi2_ok(counts, probs, n):
  """Pearson chi-square against the expected counts, at a 1e-4 false-alarm level."""
  from scipy import stats
  keep = probs > 0
  assert counts[~keep].sum() == 0, "sampled a token that should have been filtered out"
  exp = probs[keep] * n
  chi2 = ((counts[keep] - exp) ** 2 / exp).sum()
  return stats.chi2.sf(chi2, keep.sum() - 1) > 1e-4


@pytest.mark.parametrize("cfg", [SamplingConfig(temperature=1.0), SamplingConfig(temperature=0.5),
                                 SamplingConfig(temperature=1.0, top_p=0.8),
                                 SamplingConfig(temperature=2.0, top_k=3)])
def test_sampling_follows_the_intended_distribution(cfg):
  """The first sampled token of many rows against the exact filtered distribution."""
  model, params, _ = tiny_model(vocab_size=8, seed=3)
  prompt = [5, 6, 7]
  n = 4000
  sampler = Sampler(model, pad_id=PAD, eos_id=7, max_cache_len=16)
  gen = sampler(params, [prompt] * n, max_new_tokens=1, rng=jax.random.key(1), sampling=cfg)
  t = jnp.asarray([prompt], jnp.int32)
  logits = forward(model, params, t, jnp.ones_like(t, bool)).logits[0, -1]
  probs = np.asarray(jax.nn.softmax(filter_logits(logits[None], cfg))[0], np.float64)
  counts = np.bincount(gen.tokens[:, 0], minlength=8)
  assert _chi2_ok(counts, probs, n), (counts, probs * n)


def test_generate_all_returns_each_prompt_its_own_output():
  model, params, _ = tiny_model()
  sampler = Sampler(model, pad_id=0, eos_id=3, max_cache_len=64)
  rng = np.random.default_rng(3)
  prompts = [list(rng.integers(4, 64, n)) for n in (9, 3, 17, 5, 12)]
  # Batches of 2 after sorting by length: each output must still land on its prompt.
  got = sampler.generate_all(params, prompts, batch_size=2, max_new_tokens=6)
  for p, (ids, _) in zip(prompts, got):
    alone = sampler(params, [p], max_new_tokens=6)
    assert ids == alone.tokens[0, :alone.lengths[0]].tolist()
  assert sampler.generate_all(params, [], batch_size=2, max_new_tokens=6) == []


def test_packed_rows_give_each_document_its_own_logits():
  """Three documents packed into two rows (positions restart, segment ids keep them apart)
  give each document the logits it gets alone."""
  from s2jax.data import packing
  model, params, _ = tiny_model()
  docs = [[5, 6, 7, 8, 9], [10, 11, 12], [13, 14, 15, 16, 17, 18, 19]]
  packed = packing.pack(docs, width=9, pad_id=PAD)
  assert packed.tokens.shape == (2, 9)  # 7 alone; 5 + 3 share a row
  out = model.apply({"params": params}, packed.tokens, packed.positions, packed.segments > 0,
                    segment_ids=packed.segments).logits
  for i, doc in enumerate(docs):
    alone = forward(model, params, np.asarray([doc]), np.ones((1, len(doc)), bool)).logits[0]
    cols = slice(packed.offset[i], packed.offset[i] + len(doc))
    np.testing.assert_allclose(out[packed.row[i], cols], alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sampling", [SamplingConfig(), SamplingConfig(temperature=1.0)])
def test_decode_chunk_and_pack_width_do_not_change_tokens(sampling):
  """Growing the cache a chunk at a time and packing prompts for prefill change what is
  read and computed, never the tokens: greedy or sampled with one key."""
  model, params, _ = tiny_model()
  prompts = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14, 15, 16, 17, 18], [4], [19, 20, 21]]
  outs = []
  for chunk, width in ((64, 1), (3, 1), (5, 16), (1, 64)):
    sampler = Sampler(model, pad_id=PAD, eos_id=63, max_cache_len=64, decode_chunk=chunk,
                      pack_width=width)
    outs.append(sampler(params, prompts, max_new_tokens=13, sampling=sampling,
                        rng=jax.random.key(7)))
  for out in outs[1:]:
    np.testing.assert_array_equal(out.tokens, outs[0].tokens)
    np.testing.assert_array_equal(out.lengths, outs[0].lengths)
    np.testing.assert_allclose(out.logprobs, outs[0].logprobs, rtol=1e-5, atol=1e-5)


def test_a_prompts_sample_does_not_depend_on_its_batch():
  """Prompt i samples with fold_in(rng, i): batch size and position in the batch change
  nothing (what refilling finished rows relies on)."""
  model, params, _ = tiny_model()
  sampler = Sampler(model, pad_id=PAD, eos_id=EOS, max_cache_len=64)
  prompts = [[5, 6, 7], [10, 11], [12, 13, 14, 15], [4], [19, 20, 21], [8, 9]]
  runs = [sampler.generate_all(params, prompts, batch_size=b, max_new_tokens=12,
                               sampling=SamplingConfig(temperature=1.0), rng=jax.random.key(5))
          for b in (1, 2, 6)]
  assert runs[1] == runs[0] and runs[2] == runs[0]
  assert len({tuple(ids) for ids, _ in runs[0]}) > 1  # it does sample


def test_a_slot_per_row_writes_and_attends_as_each_row_alone():
  """cache_index [B]: row b writes at its own slot and attends up to it, as a batch of
  that row alone with a scalar index does."""
  model, params, _ = tiny_model()
  rng = np.random.default_rng(0)
  b, s = 3, 10
  cache = KVCache(*(jnp.asarray(rng.normal(size=(model.cfg.n_layers, b, s, model.cfg.n_kv_heads,
                                                 model.cfg.dim_per_head)), jnp.float32)
                    for _ in range(2)))
  slots = np.asarray([2, 7, 4], np.int32)
  kv_mask = np.arange(s)[None, :] <= slots[:, None] + 1   # a valid slot past each query too
  toks, pos = np.asarray([[5], [6], [7]], np.int32), slots[:, None] + 3
  out = model.apply({"params": params}, toks, pos, kv_mask, cache, jnp.asarray(slots))
  for i in range(b):
    one = KVCache(cache.k[:, i:i + 1], cache.v[:, i:i + 1])
    alone = model.apply({"params": params}, toks[i:i + 1], pos[i:i + 1], kv_mask[i:i + 1],
                        one, int(slots[i]))
    np.testing.assert_allclose(out.logits[i], alone.logits[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.cache.k[:, i], alone.cache.k[:, 0], rtol=1e-5, atol=1e-6)
  # The slot written is row i's own, no other.
  changed = np.any(np.asarray(out.cache.k != cache.k), axis=(0, 3, 4))
  np.testing.assert_array_equal(changed, np.arange(s)[None, :] == slots[:, None])


@pytest.mark.parametrize("sampling", [SamplingConfig(), SamplingConfig(temperature=1.0)])
def test_refilling_finished_rows_gives_each_prompt_its_batch_output(sampling):
  """Rows that finish take waiting prompts mid-generation; every prompt still gets the
  tokens it gets in fixed batches (its own key, fold_in(rng, i)), greedy or sampled."""
  model, params, _ = tiny_model()
  rng = np.random.default_rng(1)
  prompts = [rng.integers(4, 60, size=rng.integers(1, 12)).tolist() for _ in range(19)]
  sampler = Sampler(model, pad_id=PAD, eos_id=EOS, max_cache_len=64)
  kw = dict(batch_size=8, max_new_tokens=20, sampling=sampling, rng=jax.random.key(3),
            prefix=[9, 10, 11])
  fixed = sampler.generate_all(params, prompts, refill=False, **kw)
  fixed_steps, sampler.decode_steps = sampler.decode_steps, 0
  refilled = sampler.generate_all(params, prompts, refill=True, **kw)
  assert refilled == fixed
  lengths = [len(ids) for ids, _ in fixed]
  # Fixed batches (sorted by prompt length) run until their longest row stops; a refilled
  # step makes at most one token a row.
  by_length = [lengths[i] for i in sorted(range(len(prompts)), key=lambda i: len(prompts[i]))]
  assert fixed_steps == sum(max(by_length[i:i + 8]) for i in range(0, len(prompts), 8))
  assert sampler.decode_steps >= -(-sum(lengths) // 8)
  assert min(lengths) < 10 and max(lengths) == 20  # rows finish at different steps
  assert 0 < sum(stopped for _, stopped in fixed) < len(prompts)
  # A cache that grows and shrinks with the longest live row, 3 slots at a time.
  small = Sampler(model, pad_id=PAD, eos_id=EOS, max_cache_len=64, decode_chunk=3)
  assert small.generate_all(params, prompts, refill=True, **kw) == fixed
