import numpy as np
import pytest
from hypothesis import given, strategies as st

from s2jax import verifier_metrics as vm


def brute_auroc(scores, labels):
  pos = [s for s, l in zip(scores, labels) if l]
  neg = [s for s, l in zip(scores, labels) if not l]
  return np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])


@given(st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=2, max_size=40))
def test_auroc_equals_pairwise_definition_with_ties(pairs):
  scores = [s / 5 for s, _ in pairs]
  labels = [l for _, l in pairs]
  if all(labels) or not any(labels):
    assert np.isnan(vm.auroc(scores, labels))
  else:
    assert vm.auroc(scores, labels) == pytest.approx(brute_auroc(scores, labels))


def test_error_detection_and_first_error():
  scores = [[0.9, 0.2, 0.1], [0.9, 0.8], [0.3, 0.9], [0.9, 0.9, 0.4]]
  labels = [[True, False, False], [True, True], [True, False], [True, True, False]]
  # Solution 0: first flag at 1 = first error. 1: no error (skipped). 2: flags 0, error at 1.
  # 3: flags 2 = error at 2.
  assert vm.first_error_accuracy(scores, labels) == pytest.approx(2 / 3)
  d = vm.error_detection(np.concatenate(scores), np.concatenate(labels))
  # flagged: 0.2, 0.1, 0.3, 0.4 → 3 of them invalid; invalid steps: 4.
  assert d["error_precision"] == pytest.approx(3 / 4)
  assert d["error_recall"] == pytest.approx(3 / 4)


def test_reliability_of_a_calibrated_and_an_overconfident_scorer():
  rng = np.random.default_rng(0)
  p = rng.uniform(size=20000)
  y = rng.uniform(size=p.size) < p
  assert vm.reliability(p, y)["ece"] < 0.02
  assert vm.reliability(np.where(p > 0.5, 0.99, 0.01), y)["ece"] > 0.2
  assert sum(b["count"] for b in vm.reliability(p, y)["bins"]) == p.size


def test_label_agreement_thresholds_soft_labels():
  a = vm.label_agreement([1.0, 0.25, 0.75, 0.0], [True, False, False, False])
  assert a["agreement"] == 0.75 and a["invalid_recall"] == pytest.approx(2 / 3)
  assert a["invalid_precision"] == 1.0


def test_step_auroc_needs_enough_steps_of_each_class():
  rng = np.random.default_rng(0)
  labels = [rng.random(10) < 0.5 for _ in range(30)]  # 300 steps, ~150 of each class
  scores = [l * 0.5 + rng.random(10) * 0.6 for l in labels]
  r = vm.step_report(scores, labels)
  flat_l = np.concatenate(labels)
  assert r["valid_steps"] == flat_l.sum() and r["invalid_steps"] == (~flat_l).sum()
  assert r["auroc"] == pytest.approx(brute_auroc(np.concatenate(scores), flat_l))
  lo, hi = r["auroc_ci"]
  assert lo < r["auroc"] < hi
  assert vm.describe_auroc(r) == (f"{r['auroc']:.3f} [{lo:.3f}, {hi:.3f}] (valid "
                                  f"{r['valid_steps']}, invalid {r['invalid_steps']})")
  few = [np.ones(10, bool)] * 30 + [np.asarray([False] * 3 + [True] * 7)]
  r = vm.step_report([np.full(10, 0.5)] * 31, few)
  assert r["auroc"] is None and r["valid_steps"] == 307 and r["invalid_steps"] == 3
  assert vm.describe_auroc(r) == "too few invalid steps (n=3)"
  assert vm.step_report(scores, labels, min_class=200)["auroc"] is None



def brute_same_index_auroc(scores, labels):
  wins = pairs = 0.0
  for s1, l1 in zip(scores, labels):
    for i, (x, y) in enumerate(zip(s1, l1)):
      if not y:
        continue
      for s2, l2 in zip(scores, labels):
        if i < len(l2) and not l2[i]:
          wins += 1.0 if x > s2[i] else 0.5 if x == s2[i] else 0.0
          pairs += 1
  return wins / pairs


def test_same_index_auroc_sees_through_a_position_only_verifier():
  rng = np.random.default_rng(1)
  # errors spread: every step after the first invalid one is invalid too
  labels = [np.arange(6) < rng.integers(0, 7) for _ in range(60)]
  position_only = [1.0 - np.arange(6) / 6 for _ in labels]
  assert vm.auroc(np.concatenate(position_only), np.concatenate(labels)) > 0.75
  assert vm.same_index_auroc(position_only, labels) == pytest.approx(0.5)
  noisy = [l * 0.3 + rng.random(6) for l in labels]
  assert vm.same_index_auroc(noisy, labels) == pytest.approx(brute_same_index_auroc(noisy, labels))
  assert np.isnan(vm.same_index_auroc([[0.2]], [[True]]))


def test_error_kinds_group_the_checkers_reasons():
  reasons = [["ok", "wrong relation: Zoe is 3+4, not 3*4", "Ada needs Bo, which no earlier "
              "step computed"], ["ok", "wrong relation: Kai is 10+2, not 10*2"]]
  scores = [[0.9, 0.2, 0.6], [0.8, 0.4]]
  labels = [[True, False, False], [True, False]]
  got = vm.error_kinds(reasons, scores, labels)
  assert got[0]["kind"] == "wrong relation: N is #+#, not #*#" and got[0]["count"] == 2
  assert got[0]["mean_score"] == pytest.approx(0.3)
  assert got[0]["auroc_vs_valid"] == 1.0  # 0.2 and 0.4 below both valid 0.9, 0.8
  assert got[1] == {"kind": "N needs N, which no earlier step computed", "count": 1,
                    "mean_score": 0.6, "auroc_vs_valid": 1.0}


def test_score_length_correlation_is_spearmans():
  from scipy.stats import spearmanr
  scores, steps = [0.9, 0.7, 0.8, 0.2, 0.1], [1, 2, 2, 4, 5]
  got = vm.score_length_correlation(scores, steps)
  assert got["spearman"] == pytest.approx(spearmanr(scores, steps).statistic) and got["n"] == 5
  assert got["spearman"] < -0.8
  assert np.isnan(vm.score_length_correlation([0.5, 0.4, 0.3], [2, 2, 2])["spearman"])


def _one_step_solutions(n_pos, n_neg, shift, rng):
  scores = np.concatenate([rng.normal(shift, 1, n_pos), rng.normal(0, 1, n_neg)])
  labels = np.concatenate([np.ones(n_pos, bool), np.zeros(n_neg, bool)])
  return [[x] for x in scores], [[y] for y in labels]


def test_auroc_interval_matches_hanley_mcneil_for_independent_steps():
  # One step per solution: resampling solutions is resampling steps, and the interval's
  # half-width should be about 1.96 standard errors of Hanley & McNeil (1982).
  rng = np.random.default_rng(0)
  scores, labels = _one_step_solutions(600, 300, 1.5, rng)
  a = vm.auroc(np.ravel(scores), np.ravel(labels))
  q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
  se = np.sqrt((a * (1 - a) + 599 * (q1 - a * a) + 299 * (q2 - a * a)) / (600 * 300))
  lo, hi = vm.auroc_interval(scores, labels)
  assert lo < a < hi
  assert (hi - lo) / 2 == pytest.approx(1.96 * se, rel=0.2)
  # A perfect separator has nowhere to go.
  assert vm.auroc_interval([[1.0], [1.0], [0.0]] * 50, [[True], [True], [False]] * 50) == [1.0, 1.0]


def test_auroc_interval_widens_when_steps_come_in_correlated_solutions():
  # Every solution's four steps share one score and one label: four copies of the same
  # evidence, so the solution bootstrap's interval is that of the one-step data, not
  # half its width as four times as many independent steps would give.
  rng = np.random.default_rng(1)
  scores, labels = _one_step_solutions(200, 100, 1.0, rng)
  wide = vm.auroc_interval([s * 4 for s in scores], [l * 4 for l in labels])
  one = vm.auroc_interval(scores, labels)
  assert wide[1] - wide[0] == pytest.approx(one[1] - one[0], rel=0.2)


def test_auroc_difference_is_paired_by_solution():
  rng = np.random.default_rng(2)
  scores, labels = _one_step_solutions(300, 150, 0.5, rng)
  same = vm.auroc_difference(scores, scores, labels)
  assert same["difference"] == 0 and same["ci"] == [0.0, 0.0]
  perfect = [[float(l[0])] for l in labels]
  d = vm.auroc_difference(scores, perfect, labels)
  assert d["b"] == 1.0 and d["difference"] == pytest.approx(1.0 - d["a"])
  assert d["ci"][0] > 0
  with pytest.raises(ValueError, match="same solutions"):
    vm.auroc_difference(scores, scores[:-1], labels)


def _pairs_by_loop(scores, correct, problems, texts=None):
  """Every (correct, wrong) pair of samples of one problem, counted in a plain loop."""
  keep = range(len(scores))
  if texts is not None:
    seen, keep = set(), []
    for i in range(len(scores)):
      if (problems[i], texts[i]) not in seen:
        seen.add((problems[i], texts[i]))
        keep.append(i)
  wins = pairs = 0.0
  for i in keep:
    for j in keep:
      if problems[i] == problems[j] and correct[i] and not correct[j]:
        pairs += 1
        wins += 1.0 if scores[i] > scores[j] else 0.5 if scores[i] == scores[j] else 0.0
  return wins, pairs


def test_within_problem_auroc_is_the_fraction_of_same_problem_pairs_won():
  rng = np.random.default_rng(3)
  n = 300
  problems = rng.integers(0, 40, n)
  texts = [f"t{x}" for x in rng.integers(0, 4, n)]   # many samples drawn twice
  correct = rng.random(n) < 0.5
  # a sample drawn twice scores the same (the verifier is a function of the text)
  by_text = {(p, t): rng.choice([0.1, 0.5, 0.9]) for p, t in zip(problems, texts)}
  scores = np.asarray([by_text[(p, t)] + 0.3 * c for p, t, c in zip(problems, texts, correct)])
  for tx in (None, texts):
    # the same text has the same outcome in real samples; make it so here
    corr = correct if tx is None else np.asarray(
        [correct[[k for k in range(n) if problems[k] == p and texts[k] == t][0]]
         for p, t in zip(problems, texts)])
    sc = scores if tx is None else np.asarray([by_text[(p, t)] + 0.3 * c
                                               for p, t, c in zip(problems, texts, corr)])
    wins, pairs = _pairs_by_loop(sc, corr, problems, tx)
    got = vm.within_problem_auroc(sc, corr, problems, tx, resamples=500)
    assert got["pairs"] == pairs
    assert got["auroc"] == pytest.approx(wins / pairs)
    assert got["ci"][0] < got["auroc"] < got["ci"][1]


def test_a_score_that_only_knows_the_problem_ranks_nothing_within_it():
  """Each sample scored by its problem's solve rate: the pooled AUROC is high (hard
  problems have the wrong samples), the within-problem one is exactly 0.5, and the
  problem-mean AUROC equals the pooled one."""
  rng = np.random.default_rng(0)
  problems = np.repeat(np.arange(60), 8)
  rate = np.repeat(rng.random(60), 8)
  correct = rng.random(len(problems)) < rate
  scores = rate
  assert vm.auroc(scores, correct) > 0.75
  got = vm.within_problem_auroc(scores, correct, problems, resamples=200)
  assert got["auroc"] == 0.5 and got["pairs"] > 200
  assert vm.problem_mean_auroc(scores, correct, problems) == vm.auroc(scores, correct)
  # A verifier that knows each sample's outcome: within-problem 1, problem-mean unchanged
  # from the rate-only score's (the mean of a problem's scores is its solve rate).
  assert vm.within_problem_auroc(correct.astype(float), correct, problems,
                                 resamples=200)["auroc"] == 1.0
  assert vm.problem_mean_auroc(correct.astype(float), correct, problems) == pytest.approx(
      vm.auroc(np.repeat([correct[i * 8:(i + 1) * 8].mean() for i in range(60)], 8), correct))


def test_within_problem_auroc_names_mismatched_inputs_and_handles_no_pairs():
  with pytest.raises(ValueError, match="3 scores, 2 outcomes"):
    vm.within_problem_auroc([0.1, 0.2, 0.3], [True, False], [0, 0, 0])
  got = vm.within_problem_auroc([0.1, 0.2], [True, True], [0, 0])
  assert got["pairs"] == 0 and np.isnan(got["auroc"])


def test_process_bench_by_hand():
  scores = [[0.9, 0.2, 0.1],   # first invalid at 1, flagged at 1: hit
            [0.3, 0.9],        # first invalid at 1, flagged at 0: miss
            [0.9, 0.9],        # all valid, none flagged: right
            [0.9, 0.4],        # all valid, one flagged: wrong
            [0.8, 0.7, 0.6]]   # all valid, none flagged: right
  labels = [[True, False, False], [True, False], [True, True], [True, True],
            [True, True, True]]
  got = vm.process_bench(scores, labels)
  assert got["first_error_accuracy"] == 0.5 and got["valid_chain_accuracy"] == pytest.approx(2 / 3)
  assert got["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
  assert (got["erroneous_chains"], got["valid_chains"]) == (2, 3)
  assert np.isnan(vm.process_bench(scores[2:], labels[2:])["f1"])
