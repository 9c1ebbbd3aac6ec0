import numpy as np

from s2jax import labels
from s2jax.tasks import arith


def problems(n=30, seed=0):
  return arith.generate_split(arith.TaskConfig(min_steps=2, max_steps=5), n, seed)


def test_exact_labels_on_references_and_corruptions():
  ps = problems()
  for p in ps:
    r = labels.exact_record(p, p.solution)
    assert all(r["labels"]) and len(r["completions"]) == p.num_steps
  rng = np.random.default_rng(0)
  for r, p in zip(labels.corrupted_records(ps, rng), ps):
    assert r["labels"][-1] is False and all(r["labels"][:-1])
    # The exact checker agrees with the corrupter's labels.
    assert labels.exact_record(p, "\n".join(r["completions"]))["labels"] == r["labels"]
  assert labels.exact_record(ps[0], "#### 3") is None


def test_annotation_labels_only_see_arithmetic():
  q = "Ada has 3 apples."
  r = labels.annotation_record(q, "Ben has 3+2 = <<3+2=5>>5 apples.\n"
                                  "Cy has 5*2 = <<5*2=11>>11 apples.\nno annotation here\n#### 11")
  assert r["labels"] == [True, False, True]


def test_balance_evens_the_labels_and_keeps_every_invalid_step():
  ps = problems(60)
  rng = np.random.default_rng(1)
  recs = [labels.exact_record(p, p.solution) for p in ps] + labels.corrupted_records(ps[:20], rng)
  pos, neg = labels.label_counts(recs)
  assert pos > 2 * neg
  kept = labels.balance(recs, rng)
  kpos, kneg = labels.label_counts(kept)
  assert kneg == neg and abs(kpos - kneg) <= 5
