import numpy as np
import pytest
from hypothesis import given, strategies as st

from s2jax.tasks import arith
from s2jax.tasks.arith import TaskConfig

configs = st.builds(
    TaskConfig,
    min_steps=st.integers(1, 3), max_steps=st.integers(3, 12),
    min_distractors=st.integers(0, 2), max_distractors=st.integers(2, 6),
    ops=st.sampled_from([arith.OPS, ("add", "sub"), ("mul", "div", "add"), ("sum", "add")]),
    max_value=st.sampled_from([50, 100, 1000]),
    families=st.sampled_from([(0,), (1,), (2,), (0, 1, 2)]))


@given(cfg=configs, seed=st.integers(0, 2 ** 31 - 1))
def test_reference_solutions_check_fully_valid(cfg, seed):
  p = arith.generate(cfg, np.random.default_rng(seed))
  v = arith.check_solution(p, p.solution)
  assert v.fully_valid, [s.reason for s in v.steps]
  assert len(v.steps) == p.num_steps
  assert cfg.min_steps <= p.num_steps <= cfg.max_steps
  assert cfg.min_distractors <= p.num_distractors <= cfg.max_distractors
  assert p.family in cfg.families


@given(cfg=configs, seed=st.integers(0, 2 ** 31 - 1))
def test_corrupted_step_is_invalid_and_prefix_valid(cfg, seed):
  rng = np.random.default_rng(seed)
  p = arith.generate(cfg, rng)
  steps, i, kind = arith.corrupt(p, rng)
  assert kind in arith.CORRUPTIONS and len(steps) == i + 1
  v = arith.check_solution(p, "\n".join(steps))
  assert not v.steps[i].valid
  assert all(s.valid for s in v.steps[:i])
  assert v.first_error == i


@pytest.mark.parametrize("kind", arith.CORRUPTIONS)
def test_each_corruption_kind_is_used_and_plausible(kind):
  rng = np.random.default_rng(0)
  cfg = TaskConfig(min_steps=3, max_steps=6)
  kinds = []
  for _ in range(50):
    p = arith.generate(cfg, rng)
    steps, i, got = arith.corrupt(p, rng, kinds=(kind,))
    kinds.append(got)
    assert "<<" in steps[-1] and steps[-1].endswith(f"{p.item}.")
  assert kinds.count(kind) > 25  # fallbacks to "arithmetic" are rare


@given(text=st.text(max_size=300), seed=st.integers(0, 1000))
def test_checker_never_crashes_on_arbitrary_text(text, seed):
  p = arith.generate(TaskConfig(), np.random.default_rng(seed))
  v = arith.check_solution(p, text)
  assert isinstance(v.answer_correct, bool)
  arith.check_annotations(text)


@given(seed=st.integers(0, 1000), cut=st.integers(0, 400),
       junk=st.sampled_from(["<<", ">>", "=", "####", "\n", "<<1/0=3>>", "<<2**99=1>>", "x"]))
def test_checker_never_crashes_on_mangled_solutions(seed, cut, junk):
  p = arith.generate(TaskConfig(), np.random.default_rng(seed))
  s = p.solution
  arith.check_solution(p, s[:cut] + junk + s[cut:])


def test_specific_verdicts():
  p = arith.generate(TaskConfig(min_steps=2, max_steps=2, max_distractors=0),
                     np.random.default_rng(5))
  steps, _ = arith.split_steps(p.solution)
  v = arith.check_solution(p, steps[0] + "\n#### 0")
  assert v.steps[0].valid and not v.answer_correct and not v.fully_valid
  v = arith.check_solution(p, "I don't know\n#### " + str(p.answer))
  assert v.answer_correct and not v.steps[0].valid and not v.fully_valid
  assert arith.check_solution(p, "").steps == []
  assert arith.safe_eval("__import__('os')") is None
  assert arith.safe_eval("3*(4+1)/5") == 3.0


def test_generation_is_seeded():
  a = arith.generate_split(TaskConfig(), 5, seed=1)
  b = arith.generate_split(TaskConfig(), 5, seed=1)
  assert [x.question for x in a] == [x.question for x in b]
  rec = a[0].to_json()
  assert arith.Problem.from_json(rec).values == a[0].values


def test_shift_splits_differ_in_the_intended_knob(tiny_config):
  from s2jax.tasks import splits
  c = tiny_config()
  shifted = splits.build_split(c, "shift_steps", 20)
  assert min(p.num_steps for p in shifted) >= 4
  assert max(p.num_steps for p in splits.build_split(c, "train", 20)) <= 3
  with pytest.raises(ValueError, match="unknown split"):
    splits.build_split(c, "nope", 3)


@pytest.mark.parametrize("bad,match", [
    (dict(min_steps=0), "min_steps"), (dict(min_steps=5, max_steps=4), "min_steps"),
    (dict(ops=("pow",)), "ops"), (dict(families=(7,)), "families"),
    (dict(max_value=5), "max_value"), (dict(max_steps=30, max_distractors=10), "max_steps")])
def test_bad_task_config(bad, match):
  with pytest.raises(ValueError, match=match):
    TaskConfig(**bad)
  with pytest.raises(ValueError, match="unknown key"):
    TaskConfig.from_dict({"num_stepz": 3})
