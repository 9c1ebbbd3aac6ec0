import jax
import jax.numpy as jnp
import numpy as np

from s2jax import verifier
from s2jax.models.transformer import forward
from tests.helpers import random_batch, tiny_model
from tests.test_tokenizers import tok  # noqa: F401  (fixture)


def test_scores_sit_on_the_step_end_tokens():
  model, params, _ = tiny_model(lm_head=False, scalar_head=True)
  b = random_batch(3, 12, 64, min_len=10)
  pos = np.asarray([[3, 6, 9], [2, 5, 0], [8, 0, 0]], np.int32)
  valid = np.asarray([[1, 1, 1], [1, 1, 0], [1, 0, 0]], bool)
  probs = verifier.score_steps(model, params, b["tokens"], b["mask"], pos, valid)
  s = forward(model, params, b["tokens"], b["mask"]).scalars
  for i in range(3):
    for j in range(3):
      want = float(jax.nn.sigmoid(s[i, pos[i, j]])) if valid[i, j] else 0.0
      np.testing.assert_allclose(probs[i, j], want, rtol=1e-6)


def test_bce_matches_reference_and_handles_soft_labels():
  logits = jnp.asarray([-30.0, -1.0, 0.0, 2.0, 30.0])
  for y in (0.0, 0.3, 1.0):
    p = jax.nn.sigmoid(logits)
    ref = -(y * jnp.log(jnp.clip(p, 1e-30)) + (1 - y) * jnp.log(jnp.clip(1 - p, 1e-30)))
    got = verifier._bce(logits, jnp.full_like(logits, y))
    np.testing.assert_allclose(got[1:4], ref[1:4], rtol=1e-5)
    assert np.all(np.isfinite(got))


def test_prm_and_orm_losses_train_the_scalar_head():
  from s2jax import train as T
  from tests.test_train import OPTIM
  model, _, mesh = tiny_model(lm_head=False, scalar_head=True)
  opt = T.make_optimizer(OPTIM)
  b = random_batch(8, 12, 64, min_len=10, seed=5)
  rng = np.random.default_rng(0)
  prm_batch = dict(b, step_pos=rng.integers(0, 10, (8, 3)).astype(np.int32),
                   step_labels=rng.integers(0, 2, (8, 3)).astype(np.float32),
                   step_valid=np.ones((8, 3), bool))
  orm_batch = dict(b, label=rng.integers(0, 2, 8).astype(np.float32))
  for loss, batch in ((verifier.prm_loss, prm_batch), (verifier.orm_loss, orm_batch)):
    state, sh = T.create_state(model, opt, jax.random.key(0), mesh)
    step = T.jit_train_step(T.make_train_step(lambda p, x: loss(model, p, x), opt), sh, mesh)
    first = None
    for _ in range(40):
      state, m = step(state, batch)
      first = float(m["loss"]) if first is None else first
    assert float(m["loss"]) < 0.5 * first


def test_scorer_scores_do_not_depend_on_batching_or_padding(tok):  # noqa: F811
  from s2jax.data import stepwise
  model, params, _ = tiny_model(vocab_size=tok.vocab_size, lm_head=False, scalar_head=True)
  qs = ["Ada has 3 apples.", "Ben has 12 coins. Cy has 2 more coins than Ben.", "Di has 1."]
  steps = [["Ben has 3+2 = <<3+2=5>>5 apples.", "Cy has 5*2 = <<5*2=10>>10 apples."],
           ["Cy has 12+2 = <<12+2=14>>14 coins."] * 5, []]
  # Alone: one record per batch, exactly the sequence length it needs.
  want = []
  for q, s in zip(qs, steps):
    if not s:
      want.append(np.zeros((0,)))
      continue
    rec = {"prompt": q, "completions": s}
    b = stepwise.prm_batch(tok, [rec], stepwise.record_length(tok, rec), len(s))
    want.append(np.asarray(verifier.score_steps(model, params, b["tokens"], b["mask"],
                                                b["step_pos"], b["step_valid"]))[0])
  for batch_size in (1, 2, 4):
    got = verifier.Scorer(model, params, tok, batch_size=batch_size).step_scores(qs, steps)
    for g, w in zip(got, want):
      np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
  sols = ["\n".join(s + ["#### 10"]) for s in steps]
  o1 = verifier.Scorer(model, params, tok, batch_size=1).outcome_scores(qs, sols)
  o4 = verifier.Scorer(model, params, tok, batch_size=4).outcome_scores(qs, sols)
  np.testing.assert_allclose(o1, o4, rtol=1e-5, atol=1e-6)
  assert np.all((o1 > 0) & (o1 < 1))


def test_packed_prm_batch_gives_the_padded_batch_loss_and_gradients(tok):  # noqa: F811
  """The same step records packed several to a row (positions restart, segment ids, each
  row's step slots holding all its records' steps) give prm_batch's summed loss, step
  count and gradients; without the segment ids the loss differs."""
  from s2jax.data import stepwise
  model, params, _ = tiny_model(vocab_size=tok.vocab_size, lm_head=False, scalar_head=True)
  records = [
      {"prompt": "Ada has 3 apples.", "completions": ["Ben has 3+2 = 5 apples.", "So 5."],
       "labels": [True, False]},
      {"prompt": "Di has 1.", "completions": ["Ed has 1+1 = 2."], "labels": [True]},
      {"prompt": "Ben has 12 coins.", "completions": ["Cy has 12+2 = 14.", "Di 14*2 = 28.",
                                                      "So 28."], "labels": [True, True, False]},
      {"prompt": "Fay has 7.", "completions": ["Gus has 7-3 = 4."], "labels": [0.25]},
  ]
  lengths = [stepwise.record_length(tok, r) for r in records]
  padded = stepwise.prm_batch(tok, records, max(lengths), max_steps=3)
  width = max(lengths) + min(lengths)
  packed = stepwise.prm_packed_batch(tok, records, width, max_steps=3, rows_multiple=1)
  assert packed["tokens"].shape[0] < len(records)  # it did pack
  assert packed["step_valid"].sum() == padded["step_valid"].sum() == 7
  loss = lambda p, b: verifier.prm_loss(model, p, b)[0]
  (l_pad, g_pad), (l_pack, g_pack) = (jax.value_and_grad(loss)(params, b)
                                      for b in (padded, packed))
  np.testing.assert_allclose(l_pack, l_pad, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               g_pack, g_pad)
  unsegmented = {k: v for k, v in packed.items() if k != "segments"}
  assert abs(float(loss(params, unsegmented)) - float(l_pad)) > 1e-4


def test_within_problem_ranking_against_a_loop_over_pairs():
  rng = np.random.default_rng(1)
  b, s = 12, 4
  logits = rng.normal(size=(b, s)).astype(np.float32)
  valid = rng.random((b, s)) < 0.8
  valid[3] = False                                   # a row without steps takes no part
  group = rng.integers(-1, 3, b).astype(np.int32)    # -1: a record of no problem
  outcome = (rng.random(b) < 0.5).astype(np.float32)
  want_sum = want_pairs = 0.0
  score = [min(logits[i][valid[i]]) if valid[i].any() else None for i in range(b)]
  for i in range(b):
    for j in range(b):
      if (group[i] == group[j] >= 0 and outcome[i] == 1 and outcome[j] == 0
          and score[i] is not None and score[j] is not None):
        want_pairs += 1
        want_sum += np.log1p(np.exp(-(score[i] - score[j])))
  got_sum, got_pairs = verifier.within_problem_ranking(jnp.asarray(logits), jnp.asarray(valid),
                                                       jnp.asarray(group), jnp.asarray(outcome))
  assert want_pairs > 0 and float(got_pairs) == want_pairs
  np.testing.assert_allclose(float(got_sum), want_sum, rtol=1e-5)


def test_the_ranking_term_adds_its_weight_times_the_mean_pair_loss_and_ranks(tok):  # noqa: F811
  """prm_loss with ranking_weight: BCE sum + weight x step count x mean pair loss; a few
  steps on the ranking term alone order a problem's right solution above its wrong one."""
  from s2jax.data import stepwise
  model, params, _ = tiny_model(vocab_size=tok.vocab_size, lm_head=False, scalar_head=True)
  recs = [{"prompt": "Ada has 3 apples.", "completions": ["Ben has 3+2 = 5.", "So 5."],
           "labels": [True, True], "group": 0, "outcome": 1.0},
          {"prompt": "Ada has 3 apples.", "completions": ["Ben has 3+4 = 7.", "So 7."],
           "labels": [True, True], "group": 0, "outcome": 0.0},   # labels alone can't tell
          {"prompt": "Di has 1.", "completions": ["Ed has 1+1 = 2."], "labels": [True]}]
  b = stepwise.prm_batch(tok, recs, 64, 2)
  assert b["group"].tolist() == [0, 0, -1] and b["outcome"].tolist() == [1.0, 0.0, 0.0]
  plain, w, _ = verifier.prm_loss(model, params, b)
  total, w2, m = verifier.prm_loss(model, params, b, ranking_weight=0.5)
  rank_sum, pairs = verifier.within_problem_ranking(
      verifier.scalars_at(model, params, b["tokens"], b["mask"], b["step_pos"]),
      b["step_valid"], b["group"], b["outcome"])
  assert float(pairs) == 1.0 and float(w) == float(w2) == 5.0
  np.testing.assert_allclose(float(total), float(plain) + 0.5 * 5.0 * float(rank_sum),
                             rtol=1e-5)
  assert float(m["ranking_pairs"]) / float(w) == 1.0

  def margin(p):
    s = verifier.scalars_at(model, p, b["tokens"], b["mask"], b["step_pos"])
    return float(jnp.min(s[0]) - jnp.min(s[1]))
  before = margin(params)
  rank_only = lambda p: verifier.within_problem_ranking(  # noqa: E731
      verifier.scalars_at(model, p, b["tokens"], b["mask"], b["step_pos"]),
      b["step_valid"], b["group"], b["outcome"])[0]
  for _ in range(20):
    g = jax.grad(rank_only)(params)
    params = jax.tree.map(lambda x, y: x - 0.05 * y, params, g)
  assert margin(params) > before + 0.5


def test_grouped_batches_keep_a_group_together_and_cover_each_epoch_once():
  from s2jax.data.batches import GroupedBatches
  groups = [0, 0, 0, 1, 1, 2, 3, 3, 3, 3, -5, -6, 4, 4]   # negative: groups of one
  order = GroupedBatches(groups, 4, seed=3)
  n = len(groups)
  stream = np.concatenate([order[s] for s in range(7)])  # 28 = two epochs
  for epoch in (stream[:n], stream[n:]):
    assert sorted(epoch.tolist()) == list(range(n))
    seen = [groups[i] for i in epoch]
    # a group's examples are consecutive in the stream
    for g in set(groups):
      at = [k for k, x in enumerate(seen) if x == g]
      assert at == list(range(at[0], at[0] + len(at)))
  assert not np.array_equal(stream[:n], stream[n:])      # a fresh shuffle each epoch
  again = GroupedBatches(groups, 4, seed=3)
  assert all(np.array_equal(again[s], order[s]) for s in (5, 0, 3))  # any step, any order
