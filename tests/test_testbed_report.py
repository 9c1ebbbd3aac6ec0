"""The testbed report's plateau check (s2jax.reports.testbed): hand cases."""
import pytest

from s2jax.reports import testbed


def _run(points: dict, steps: int = 4000) -> dict:
  return {"name": "r", "options": {"train.steps": steps},
          "curve_outcomes": {str(s): {"correct": c, "fully_valid": c} for s, c in points.items()}}


def test_the_last_quarter_is_compared_problem_by_problem():
  n = 200
  at_3000 = [1] * 100 + [0] * 100
  at_4000 = [1] * 100 + [1] * 3 + [0] * 97     # 3 more problems right: +0.015
  p = testbed.plateau(_run({0: [0] * n, 2000: at_3000, 3000: at_3000, 4000: at_4000}))
  assert (p["from_step"], p["to_step"]) == (3000, 4000)
  assert p["correct"]["difference"] == pytest.approx(0.015)
  assert p["correct"]["n"] == n and not p["flat"]
  assert p["correct"]["ci"][0] >= 0.0   # only gains: every resample is >= 0
  # Two problems gained: +0.010, flat at the 0.01 tolerance.
  at_4000[102] = 0
  assert testbed.plateau(_run({3000: at_3000, 4000: at_4000}))["flat"]
  # Consecutive gains, in step order.
  p = testbed.plateau(_run({0: [0] * n, 3000: at_3000, 4000: at_4000}))
  assert [(g["from_step"], g["to_step"]) for g in p["gains"]] == [(0, 3000), (3000, 4000)]
  assert p["gains"][0]["difference"] == pytest.approx(0.5)
  assert p["from_start"]["correct"]["difference"] == pytest.approx(102 / 200)


def test_the_stretch_starts_at_the_nearest_point_before_the_last_quarter():
  p = testbed.plateau(_run({0: [1, 0], 2500: [1, 1], 3500: [0, 0], 4000: [1, 1]}))
  assert p["from_step"] == 2500
  assert testbed.plateau(_run({4000: [1, 0]})) is None


def test_a_continued_run_counts_steps_from_the_policy_it_continues():
  assert testbed.start_step({"init_from": ""}) == 0
  # The shipped first phase: 4,000 steps from scratch (configs/base_policy.py:scratch4k).
  assert testbed.start_step({"init_from": "arith_sft4k"}) == 4000
