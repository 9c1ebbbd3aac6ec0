import dataclasses

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


@given(cfg=configs, seed=st.integers(0, 2 ** 31 - 1))
def test_planned_corruptions_open_with_the_plan_and_end_in_the_one_invalid_step(cfg, seed):
  rng = np.random.default_rng(seed)
  p = arith.generate(cfg, rng)
  steps, i, kind = arith.corrupt_planned(p, rng)
  assert len(steps) == i + 1
  v = arith.check_solution(p, "\n".join(steps))
  assert [s.valid for s in v.steps] == [True] * i + [False]
  if kind == "plan":
    assert i == 0 and steps[0] != arith.plan_line(p) and arith.is_plan_line(steps[0])
  else:
    assert steps[0] == arith.plan_line(p) and kind in arith.CORRUPTIONS


def test_the_plan_line_is_the_wrong_step_as_often_as_any_other():
  rng = np.random.default_rng(0)
  p = arith.generate(TaskConfig(min_steps=3, max_steps=3), rng)  # 4 steps with the plan
  at = [arith.corrupt_planned(p, rng)[1] for _ in range(2000)]
  assert np.bincount(at).tolist() == pytest.approx([500] * 4, abs=80)


@pytest.mark.parametrize("kind", arith.ALL_CORRUPTIONS)
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


# ------------------------------------------------------------------- strict (relations)

def _swap(expr):
  sym = next(c for c in "+-*/" if c in expr)
  a, b = expr.split(sym)
  return f"{b}{sym}{a}", sym, a, b


def _with_expr(p, i, expr):
  """The reference with step i computing its entity's true count by `expr`."""
  steps, final = arith.split_steps(p.solution)
  name = steps[i].split(" ", 1)[0]
  value = p.values[name]
  steps = steps[:i] + [f"{name} has {expr} = <<{expr}={value}>>{value} {p.item}."] + steps[i + 1:]
  return "\n".join(steps + [final])


@given(cfg=configs, seed=st.integers(0, 2 ** 31 - 1), k=st.integers(1, 10 ** 6))
def test_an_accidental_expression_with_the_right_value_is_invalid(cfg, seed, k):
  """"Zoe has 8+8 = 16" where Zoe = Dev + 12: the right count from numbers that are not
  Zoe's relation. The strict checker rejects it; the old value-only check did not."""
  p = arith.generate(cfg, np.random.default_rng(seed))
  steps, _ = arith.split_steps(p.solution)
  i = k % len(steps)
  name = steps[i].split(" ", 1)[0]
  v = p.values[name]
  sym, want = arith.relation_operands(p, name)
  split = 1 + k % max(v - 1, 1)
  expr = f"{v - split}+{split}"
  assume_other = not (sym == "+" and sorted(want) == sorted([v - split, split]))
  verdict = arith.check_solution(p, _with_expr(p, i, expr))
  if assume_other:
    assert not verdict.steps[i].valid and "wrong relation" in verdict.steps[i].reason
    assert all(s.valid for j, s in enumerate(verdict.steps) if j != i)
    lenient = dataclasses.replace(p, relations=None, grounded=p.grounded + [v - split, split])
    assert arith.check_solution(lenient, _with_expr(p, i, expr)).steps[i].valid


@given(cfg=configs, seed=st.integers(0, 2 ** 31 - 1))
def test_commutative_reorderings_are_valid_and_the_others_are_not(cfg, seed):
  p = arith.generate(cfg, np.random.default_rng(seed))
  steps, _ = arith.split_steps(p.solution)
  for i, line in enumerate(steps):
    expr = arith._ANNOT.findall(line)[0][0]
    swapped, sym, a, b = _swap(expr)
    v = arith.check_solution(p, _with_expr(p, i, swapped))
    assert v.steps[i].valid == (sym in "+*" or a == b), (line, swapped, v.steps[i].reason)


@given(seed=st.integers(0, 2 ** 31 - 1))
def test_relation_corruption_keeps_the_count_and_is_invalid(seed):
  rng = np.random.default_rng(seed)
  p = arith.generate(TaskConfig(min_steps=1, max_steps=6), rng)
  steps, i, kind = arith.corrupt(p, rng, kinds=("relation",))
  assert kind == "relation"
  name = steps[-1].split(" ", 1)[0]
  assert arith.parse_number(arith._ANNOT.findall(steps[-1])[0][1]) == p.values[name]
  v = arith.check_solution(p, "\n".join(steps))
  assert v.first_error == i and "wrong relation" in v.steps[i].reason


def test_a_step_before_its_parent_is_computed_is_invalid():
  p = arith.generate(TaskConfig(min_steps=3, max_steps=3, max_distractors=0, ops=("add",)),
                     np.random.default_rng(1))
  steps, final = arith.split_steps(p.solution)
  v = arith.check_solution(p, "\n".join([steps[1], steps[0], steps[2], final]))
  assert [s.valid for s in v.steps] == [False, True, True]
  assert "which no earlier step computed" in v.steps[0].reason


def test_records_without_relations_still_load_and_get_the_lenient_check():
  p = arith.generate(TaskConfig(min_steps=2, max_steps=4), np.random.default_rng(3))
  rec = p.to_json()
  assert "relations" in rec["meta"]
  del rec["meta"]["relations"]  # as every record written before relations were stored
  old = arith.Problem.from_json(rec)
  assert old.relations is None and arith.check_solution(old, p.solution).fully_valid
  steps, _ = arith.split_steps(p.solution)
  name = steps[0].split(" ", 1)[0]
  wrong = _with_expr(p, 0, f"{p.values[name]}*1")
  assert not arith.check_solution(p, wrong).steps[0].valid
  assert arith.Problem.from_json(p.to_json()).relations == p.relations


# ----------------------------------------------------------------------- planned format

@given(cfg=configs, seed=st.integers(0, 2 ** 31 - 1))
def test_the_plan_walks_from_the_asked_entity_to_a_given_count(cfg, seed):
  p = arith.generate(cfg, np.random.default_rng(seed))
  names = arith.plan_names(p)
  steps, _ = arith.split_steps(p.solution)
  # One name per hop: the asked entity, each one's first parent, ending at a given count.
  assert p.values[names[0]] == p.answer
  assert p.relations[names[-1]]["op"] == "given"
  for a, b in zip(names, names[1:]):
    assert p.relations[a]["parents"][0] == b
  # The planned solution is fully valid, with the plan as one more step.
  v = arith.check_solution(p, arith.plan_line(p) + "\n" + p.solution)
  assert v.fully_valid and len(v.steps) == len(steps) + 1


@pytest.mark.parametrize("mangle", ["reversed", "missing", "extra"])
def test_a_wrong_plan_is_an_invalid_step(mangle):
  p = arith.generate(TaskConfig(min_steps=3, max_steps=3, min_distractors=2,
                                max_distractors=2), np.random.default_rng(5))
  names = arith.plan_names(p)
  other = next(n for n in p.values if n not in names)
  wrong = {"reversed": names[::-1], "missing": names[:1] + names[2:],
           "extra": names[:1] + [other] + names[1:]}[mangle]
  v = arith.check_solution(p, f"Plan: {', '.join(wrong)}.\n" + p.solution)
  assert [s.valid for s in v.steps] == [False, True, True, True]
  assert v.steps[0].reason.startswith("the plan is")
  old = dataclasses.replace(p, relations=None)
  with pytest.raises(ValueError, match="relations"):
    arith.plan_names(old)
  assert not arith.check_solution(old, arith.plan_line(p)).steps[0].valid


def test_plan_format_target():
  from s2jax import tasks
  from s2jax.data import formats
  from s2jax.stages.sft import target_text
  task = tasks.get("arith")
  p = arith.generate(TaskConfig(), np.random.default_rng(0))
  text = target_text(task, p.to_json(), "plan")
  assert text == arith.plan_line(p) + "\n" + p.solution
  with pytest.raises(ValueError, match="plan line"):
    formats.solution_text(p.solution, "plan")
  with pytest.raises(ValueError, match="no plan line"):
    tasks.get("gsm8k").plan(None)


@given(seed=st.integers(0, 2 ** 31 - 1), kind=st.sampled_from(arith.POLICY_CORRUPTIONS))
def test_policy_like_corruptions_swap_one_operand_for_the_named_source(seed, kind):
  """A distractor corruption puts an off-chain entity's constant where the relation's
  constant was; a parent corruption puts another known count where the parent's was. The
  arithmetic is right, the checker flags the step, the steps before it stay valid."""
  rng = np.random.default_rng(seed)
  p = arith.generate(TaskConfig(min_steps=2, max_steps=4, min_distractors=1,
                                max_distractors=3, ops=("add", "sub", "mul")), rng)
  steps, i, got = arith.corrupt(p, rng, kinds=(kind,))
  v = arith.check_solution(p, "\n".join(steps))
  assert v.first_error == i and all(s.valid for s in v.steps[:i])
  if got != kind:  # no such swap for the chosen step: the documented fallbacks
    assert got in ("operand", "arithmetic")
    return
  expr, value = arith._ANNOT.findall(steps[-1])[0]
  assert arith.safe_eval(expr) == float(value)            # the arithmetic is right
  ref_expr = arith._ANNOT.findall(arith.split_steps(p.solution)[0][i])[0][0]
  old, new = (__import__("re").findall(r"\d+", e) for e in (ref_expr, expr))
  changed = [(a, b) for a, b in zip(old, new) if a != b]
  assert len(changed) == 1
  name = steps[-1].split(" ", 1)[0]
  rel = p.relations[name]
  parents = {str(p.values[q]) for q in rel["parents"]}
  if kind == "distractor":
    chain = set(arith.plan_names(p))
    assert changed[0][0] not in parents
    assert changed[0][1] in {str(r["const"]) for d, r in p.relations.items()
                             if d not in chain and r["const"] is not None}
  else:
    assert changed[0][0] in parents and changed[0][1] not in parents


def test_unknown_corruption_kinds_are_named():
  p = arith.generate(TaskConfig(), np.random.default_rng(0))
  with pytest.raises(ValueError, match="unknown \\['typo'\\]"):
    arith.corrupt(p, np.random.default_rng(0), kinds=("typo",))


def test_planned_corruptions_keep_to_the_kinds_asked_for():
  rng = np.random.default_rng(0)
  p = arith.generate(TaskConfig(min_steps=3, max_steps=3, min_distractors=2,
                                max_distractors=2), rng)
  got = {arith.corrupt_planned(p, rng, ("distractor",))[2] for _ in range(200)}
  assert "plan" not in got and "distractor" in got
  assert {arith.corrupt_planned(p, rng, ("plan",))[2] for _ in range(20)} == {"plan"}
