import numpy as np
import pytest

from s2jax import search, tasks


ARITH = tasks.get("arith")


def test_votes_and_best_of_n():
  answers = [3.0, 5.0, None, 5.0, 3.0, 7.0]
  assert search.majority_vote(answers) == 3.0        # tie 3/5 → first seen
  assert search.majority_vote([None, None]) is None
  scores = [0.1, 0.2, 0.99, 0.3, 0.1, 0.9]
  assert search.best_of_n(answers, scores) is None   # the best solution has no answer
  assert search.best_of_n(answers[:2], scores[:2]) == 5.0
  assert search.weighted_vote(answers, scores) == 7.0   # 0.9 > 0.5 (5) > 0.2 (3)


def test_aggregations():
  s = [0.9, 0.5, 0.8]
  assert search.aggregate(s, "min") == 0.5
  assert search.aggregate(s, "prod") == pytest.approx(0.36)
  assert search.aggregate(s, "last") == 0.8
  assert search.aggregate(s, "mean") == pytest.approx(2.2 / 3)
  assert search.aggregate([], "min") == 0.0
  with pytest.raises(ValueError, match="aggregation"):
    search.aggregate(s, "max")


def test_subset_accuracy_averages_disjoint_groups():
  answers = [1.0, 2.0, 1.0, 1.0]
  assert search.subset_accuracy(search.majority_vote, 1, 4, 1.0, answers) == 0.75
  assert search.subset_accuracy(search.majority_vote, 2, 4, 1.0, answers) == 1.0
  # With ties broken at random: the pair (1, 2) is right half the time.
  assert search.subset_accuracy(search.majority_candidates, 2, 4, 1.0, answers) == 0.75
  with pytest.raises(ValueError, match="N=8"):
    search.subset_accuracy(search.majority_vote, 8, 4, 1.0, answers)


# A toy tree of steps. The first step "A" looks best (0.9) but every continuation of it
# scores 0.1: a dead end. "B" (0.8) leads to a good step and the right answer.
TREE = {(): [("A", 0.9), ("B", 0.8)], ("A",): [("A1", 0.1), ("A2", 0.05)],
        ("B",): [("B1", 0.9)], ("B", "B1"): [("#### 42", None)],
        ("A", "A1"): [("#### 7", None)], ("A", "A2"): [("#### 7", None)]}
SCORE = {s: v for kids in TREE.values() for s, v in kids if v is not None}


def toy_propose(requests, n):
  out = []
  for _, steps in requests:
    kids = TREE[tuple(steps)]
    out.append([search.Proposal(kids[j % len(kids)][0], kids[0][1] is None, 3)
                for j in range(n)])
  return out


def toy_score(requests):
  return [np.asarray([SCORE[s] for s in steps]) for _, steps in requests]


def test_beam_search_backs_up_from_a_dead_end():
  cfg = search.BeamConfig(width=1, expansions=2, threshold=0.5, max_backtracks=2)
  (r,) = search.beam_search(1, toy_propose, toy_score, cfg, parse_answer=ARITH.parse_answer)
  assert r.backtracks == 1 and r.finished
  assert r.answer == 42.0 and r.solution == "B\nB1\n#### 42"
  # Every sampled candidate counts as generated compute, discarded ones included.
  assert r.tokens == 3 * 2 * r.rounds


def test_without_backtracking_the_dead_end_is_kept():
  cfg = search.BeamConfig(width=1, expansions=2, threshold=0.5, max_backtracks=0)
  (r,) = search.beam_search(1, toy_propose, toy_score, cfg, parse_answer=ARITH.parse_answer)
  assert r.backtracks == 0 and r.answer == 7.0


def test_wide_beam_keeps_both_branches_and_ranks_by_aggregate():
  cfg = search.BeamConfig(width=2, expansions=2, threshold=0.5, max_backtracks=0)
  (r,) = search.beam_search(1, toy_propose, toy_score, cfg, parse_answer=ARITH.parse_answer)
  assert r.answer == 42.0       # min(0.8, 0.9) beats min(0.9, 0.1)


def test_beam_config_is_checked():
  with pytest.raises(ValueError, match="width"):
    search.BeamConfig(width=0)


def test_a_chain_that_fills_the_cache_gets_no_next_step(monkeypatch):
  # Beam search grows prompts a step at a time; a chain with no room left in the cache for
  # one more step is dropped, and the search keeps what it found, rather than crashing.
  import jax
  monkeypatch.setattr(search, "encode_with_steps",
                      lambda tok, q, steps: ([1] * (10 + 20 * len(steps)), []))

  class Tok:
    step_end_id, eos_id = 2, 3
    decode = staticmethod(lambda ids: "step")

  class FakeSampler:
    max_cache_len = 64
    def generate_all(self, params, prompts, **kw):
      assert all(len(p) + kw["max_new_tokens"] <= self.max_cache_len for p in prompts)
      return [([5, Tok.step_end_id], True) for _ in prompts]

  propose = search.model_proposer(FakeSampler(), None, Tok(), ["q0", "q1"], batch_size=4,
                                  max_step_tokens=8, sampling=None, rng=jax.random.key(0),
                                  is_final_line=ARITH.is_final_line)
  out = propose([(0, ()), (1, ("a", "b", "c"))], 2)   # 10 + 8 fits; 70 + 8 does not
  assert [len(p) for p in out] == [2, 0] and out[0][0].text == "step"
  # The whole search ends cleanly when every chain runs out of room.
  results = search.beam_search(2, propose, lambda reqs: [np.full(len(s), 0.9) for _, s in reqs],
                               search.BeamConfig(width=1, expansions=2, max_depth=12),
                               parse_answer=ARITH.parse_answer)
  # Chains of 0, 1 and 2 steps got 2 proposals of 2 tokens each; the 3-step one (70 + 8 > 64)
  # got none, which ended the search.
  assert all(not r.finished and r.rounds == 4 and r.tokens == 3 * 2 * 2 for r in results)


@pytest.mark.parametrize("seed", range(5))
def test_random_ties_are_first_seen_over_every_order_of_the_samples(seed):
  """Samples are exchangeable: the expected accuracy of a random tie-break equals the
  first-seen rule averaged over every permutation of the samples (majority vote, where
  tied answers have equal counts, and best-of-N, where ties are between samples)."""
  import itertools
  rng = np.random.default_rng(seed)
  answers = list(rng.integers(0, 3, 6).astype(float))
  answers[int(rng.integers(6))] = None
  scores = list(rng.choice([0.2, 0.5, 0.9], 6))
  truth = 1.0
  perms = list(itertools.permutations(range(6)))
  for cands, first in ((lambda: search.majority_candidates(answers),
                        lambda p: search.majority_vote([answers[i] for i in p])),
                       (lambda: search.best_of_n_candidates(answers, scores),
                        lambda p: search.best_of_n([answers[i] for i in p],
                                                   [scores[i] for i in p]))):
    want = np.mean([first(p) == truth for p in perms])
    got = search.subset_accuracy(lambda *_: cands(), 6, 6, truth, answers)
    assert got == pytest.approx(want)


def test_weighted_vote_ties_by_hand():
  answers = [1.0, 2.0, 2.0, 3.0]
  scores = [0.8, 0.4, 0.4, 0.1]          # 1 -> 0.8, 2 -> 0.8, 3 -> 0.1
  assert sorted(search.weighted_vote_candidates(answers, scores)) == [1.0, 2.0]
  assert search.subset_accuracy(search.weighted_vote_candidates, 4, 4, 2.0, answers,
                                scores) == 0.5
  picks = {search.weighted_vote(answers, scores, np.random.default_rng(s)) for s in range(20)}
  assert picks == {1.0, 2.0}
  assert search.weighted_vote_candidates([None], [0.3]) == []
