"""A policy's headroom (s2jax.headroom): the pass@k estimator against enumeration, and a
run on the tiny pipeline's policy against that policy's own greedy evaluation."""
import itertools
import json
import os

import numpy as np
import pytest

from s2jax import headroom
from s2jax.config import load_config_file


@pytest.mark.parametrize("n,c", [(4, 0), (4, 1), (5, 2), (6, 3), (6, 6), (7, 4)])
def test_pass_at_k_is_the_fraction_of_k_subsets_with_a_correct_sample(n, c):
  outcomes = [1] * c + [0] * (n - c)
  for k in range(1, n + 1):
    subsets = list(itertools.combinations(outcomes, k))
    want = np.mean([any(s) for s in subsets])
    assert headroom.pass_at_k(n, c, k) == pytest.approx(want, abs=1e-12)


def test_pass_at_k_refuses_impossible_counts():
  with pytest.raises(ValueError, match="c=5"):
    headroom.pass_at_k(4, 5, 1)
  with pytest.raises(ValueError, match="k=0"):
    headroom.pass_at_k(4, 1, 0)


def test_headroom_of_the_tiny_policy(tiny_pipeline, root, tmp_path):
  policy = os.path.join(tiny_pipeline["workdir"], "sft")
  c = load_config_file(os.path.join(root, "configs", "headroom.py:tiny"))
  c.policy_workdir = policy
  result = headroom.run(c, str(tmp_path))
  pp, s = result["per_problem"], result["summary"]
  # Greedy outcomes are the SFT stage's own evaluation of the same problems.
  with open(os.path.join(policy, "eval", "test.jsonl")) as f:
    stage = [json.loads(line) for line in f][: c.problems]
  assert pp["greedy_correct"] == [int(r["correct"]) for r in stage]
  assert pp["greedy_fully_valid"] == [int(r["fully_valid"]) for r in stage]
  # pass@1 is the mean fraction of correct samples; pass@samples is "any sample correct".
  rates = {d["k"]: d["rate"] for d in s["pass_at_k_correct"]}
  assert rates[1] == pytest.approx(np.mean(pp["samples_correct"]) / c.samples)
  assert rates[c.samples] == pytest.approx(np.mean([x > 0 for x in pp["samples_correct"]]))
  assert all(a <= b for a, b in zip(list(rates.values()), list(rates.values())[1:]))
  # A majority vote can be right only when some sample is.
  assert all(m <= (x > 0) for m, x in zip(pp["majority_correct"], pp["samples_correct"]))
  assert all(v <= x for v, x in zip(pp["samples_fully_valid"], pp["samples_correct"]))
  headroom.write_report(result, str(tmp_path / "report"))
  assert f"pass@{c.samples}" in open(tmp_path / "report.md").read()
  with pytest.raises(ValueError, match="problems=999"):
    c.problems = 999
    headroom.run(c, str(tmp_path / "too_many"))
