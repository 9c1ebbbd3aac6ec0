"""Self-distillation filters keep exactly what they should."""
import numpy as np
import pytest

from s2jax import distill

SCORES = np.array([[0.9, 0.2, 0.9, 0.4],
                   [0.1, 0.3, 0.2, 0.05],
                   [0.6, 0.7, 0.5, 0.8]])
CORRECT = np.array([[True, False, True, False],
                    [False, False, False, False],
                    [True, True, False, True]])


def test_threshold_keeps_scores_at_or_above():
  got = distill.select("prm_threshold", scores=SCORES, correct=CORRECT,
                       rng=np.random.default_rng(0), threshold=0.6)
  np.testing.assert_array_equal(got, SCORES >= 0.6)
  assert got.sum() == 5


def test_top_k_per_problem_with_ties_by_order():
  got = distill.select("prm_topk", scores=SCORES, correct=CORRECT,
                       rng=np.random.default_rng(0), top_k=1)
  want = np.zeros_like(CORRECT)
  want[0, 0] = want[1, 1] = want[2, 3] = True  # the tie at 0.9 goes to the first sample
  np.testing.assert_array_equal(got, want)
  two = distill.keep_top_k(SCORES, 2)
  assert (two.sum(axis=1) == 2).all() and two[0, 0] and two[0, 2] and two[2, 1] and two[2, 3]
  with pytest.raises(ValueError, match="top_k"):
    distill.keep_top_k(SCORES, 0)


def test_correct_filter_is_star():
  got = distill.select("correct", scores=None, correct=CORRECT, rng=np.random.default_rng(0))
  np.testing.assert_array_equal(got, CORRECT)
  got[0, 0] = False
  assert CORRECT[0, 0]  # a copy, not a view of the caller's array


@pytest.mark.parametrize("match,count", [("prm_topk", 3), ("correct", 5), ("prm_threshold", 5)])
def test_random_matches_the_other_filters_count(match, count):
  masks = [distill.select("random", scores=SCORES, correct=CORRECT,
                          rng=np.random.default_rng(seed), match=match, top_k=1, threshold=0.6)
           for seed in range(20)]
  assert all(m.sum() == count for m in masks)
  # and it is random: different seeds pick different cells, covering the grid
  assert len({m.tobytes() for m in masks}) > 1
  assert np.logical_or.reduce(masks).sum() > count


def test_select_rejects_bad_requests():
  rng = np.random.default_rng(0)
  with pytest.raises(ValueError, match="must be one of"):
    distill.select("best", scores=SCORES, correct=CORRECT, rng=rng)
  with pytest.raises(ValueError, match="needs verifier scores"):
    distill.select("prm_topk", scores=None, correct=CORRECT, rng=rng)
  with pytest.raises(ValueError, match="its own count"):
    distill.select("random", scores=SCORES, correct=CORRECT, rng=rng, match="random")
  with pytest.raises(ValueError, match="cannot keep"):
    distill.keep_random((2, 2), 5, rng)


def test_kept_stats():
  mask = np.array([[True, True, False], [False, False, True]])
  texts = [["a", "a", "b"], ["c", "d", "e"]]
  correct = np.array([[True, True, True], [False, False, False]])
  valid = [[[True, True], [True, False], [True]], [[False], [True], [False, False]]]
  s = distill.kept_stats(mask, texts, correct, valid)
  assert s["kept"] == 3 and s["problems_with_kept"] == 2
  assert s["unique_correct_per_problem"] == 0.5  # "a" twice counts once; problem 2 has none
  assert s["kept_correct_fraction"] == pytest.approx(2 / 3)
  assert s["kept_step_validity"] == pytest.approx(3 / 6)
