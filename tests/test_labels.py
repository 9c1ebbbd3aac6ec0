import numpy as np
import pytest

from s2jax import labels, tasks
from s2jax.tasks import arith
from tests.test_tokenizers import tok  # noqa: F401  (fixture)


ARITH = tasks.get("arith")


def problems(n=30, seed=0):
  return arith.generate_split(arith.TaskConfig(min_steps=2, max_steps=5), n, seed)


def test_exact_labels_on_references_and_corruptions():
  ps = problems()
  for p in ps:
    r = labels.exact_record(ARITH, p, p.solution)
    assert all(r["labels"]) and len(r["completions"]) == p.num_steps
  rng = np.random.default_rng(0)
  for r, p in zip(labels.corrupted_records(ARITH, ps, rng), ps):
    assert r["labels"][-1] is False and all(r["labels"][:-1])
    # The exact checker agrees with the corrupter's labels.
    assert labels.exact_record(ARITH, p, "\n".join(r["completions"]))["labels"] == r["labels"]
  assert labels.exact_record(ARITH, ps[0], "#### 3") is None


def test_corrupted_records_plant_only_the_kinds_asked_for():
  """With kinds, every planted error is of those kinds: here a parent swapped for another
  known count (or its fallback, operand), never the plan line, in the planned format."""
  ps = problems(40)
  rng = np.random.default_rng(2)
  recs = labels.corrupted_records(ARITH, ps, rng, plan=True, kinds=("parent",))
  for r, p in zip(recs, ps):
    assert r["completions"][0] == arith.plan_line(p)
    v = arith.check_solution(p, "\n".join(r["completions"]))
    assert v.first_error == len(r["labels"]) - 1
    # right arithmetic on a wrong operand: the step's annotation evaluates to its value
    expr, value = arith._ANNOT.findall(r["completions"][-1])[0]
    assert arith.safe_eval(expr) == float(value)


def test_annotation_labels_only_see_arithmetic():
  q = "Ada has 3 apples."
  r = labels.annotation_record(ARITH, q, "Ben has 3+2 = <<3+2=5>>5 apples.\n"
                                  "Cy has 5*2 = <<5*2=11>>11 apples.\nno annotation here\n#### 11")
  assert r["labels"] == [True, False, True]


def test_balance_evens_the_labels_and_keeps_every_invalid_step():
  ps = problems(60)
  rng = np.random.default_rng(1)
  recs = [labels.exact_record(ARITH, p, p.solution) for p in ps] + labels.corrupted_records(ARITH, ps[:20], rng)
  pos, neg = labels.label_counts(recs)
  assert pos > 2 * neg
  kept = labels.balance(recs, rng)
  kpos, kneg = labels.label_counts(kept)
  assert kneg == neg and abs(kpos - kneg) <= 5


class _ScriptedSampler:
  """Stands in for the jitted sampler: completes each prompt with a scripted text, so the
  rollout bookkeeping (which prefix, which step, which rollout) is checked exactly."""

  def __init__(self, tok, complete):
    self.tok, self.complete, self.prompts = tok, complete, []

  def generate_all(self, params, prompts, **kw):
    self.prompts.extend(prompts)
    return [(self.tok.encode(self.complete(self.tok.decode(p), j)) + [self.tok.eos_id], True)
            for j, p in enumerate(prompts)]


def test_mc_rollouts_label_each_prefix_from_its_own_completions(tok):  # noqa: F811
  from s2jax.data.batches import encode_prompt
  from s2jax.data.steps import encode_steps
  from s2jax.sampling import SamplingConfig
  steps = ["Ben has 3+2 = <<3+2=5>>5 apples.", "Cy has 5*2 = <<5*2=11>>11 apples.",
           "Di has 11+1 = <<11+1=12>>12 apples."]
  # Rollouts reach the answer 10 only from the first prefix (any rollout) and the second
  # (odd-numbered rollouts only); never after the wrong third step.
  def complete(text, j):
    if "Di has" in text:
      return "#### 12"
    if "Cy has" in text:
      return "#### 10" if j % 2 else "#### 11"
    return "#### 10"
  sampler = _ScriptedSampler(tok, complete)
  k = 4
  (out,) = labels.rollout_outcomes(sampler, None, tok, ["Ada has 3 apples."], [steps], [10.0],
                                   extract_answer=ARITH.parse_answer, k=k, batch_size=8,
                                   max_new_tokens=16,
                                   sampling=SamplingConfig(1.0), rng=None)
  assert out.shape == (3, k)
  np.testing.assert_array_equal(out, [[1, 1, 1, 1], [0, 1, 0, 1], [0, 0, 0, 0]])
  base = encode_prompt(tok, "Ada has 3 apples.")
  ids, ends = encode_steps(tok, steps)
  assert sampler.prompts[0] == base + ids[:ends[0] + 1]       # prefix ends at end-of-step
  assert sampler.prompts[-1] == base + ids                    # all three steps
  hard = labels.mc_record("q", steps, out, k=4, mode="hard")
  assert hard["labels"] == [True, True, False]
  assert labels.mc_record("q", steps, out, k=1, mode="hard")["labels"] == [True, False, False]
  assert labels.mc_record("q", steps, out, k=4, mode="soft")["labels"] == [1.0, 0.5, 0.0]
  with pytest.raises(ValueError, match="k=5 but 4 rollouts"):
    labels.mc_record("q", steps, out, k=5)


def test_balance_also_thins_an_invalid_majority():
  recs = ([{"prompt": "q", "completions": ["a", "b"], "labels": [False, False]}] * 30 +
          [{"prompt": "q", "completions": ["a", "b"], "labels": [True, 0.25]}] * 5 +
          [{"prompt": "q", "completions": ["a"], "labels": [1.0]}] * 10)
  kept = labels.balance(recs, np.random.default_rng(0))
  pos, neg = labels.label_counts(kept)
  assert pos == 15 and abs(pos - neg) <= 2
  assert sum(r["labels"] == [True, 0.25] for r in kept) == 5   # mixed records all kept


def test_label_sources_are_registered_and_rollouts_are_drawn_only_on_demand():
  ps = problems(3)
  pairs = [(p, p.solution) for p in ps]
  calls = []

  def rollouts():
    calls.append(1)
    # Step i of every solution reached the answer in i of its 2 rollouts (capped at 2).
    return [np.asarray([[j < i for j in range(2)] for i in range(len(ARITH.split_steps(t)[0]))])
            for _, t in pairs]

  cfg = type("C", (), {"mc_k": 2, "mc_mode": "soft"})()
  ctx = labels.LabelContext(ARITH, pairs, cfg, rollouts)
  exact = labels.label("exact", ctx)
  assert not calls and all(all(r["labels"]) for r in exact)  # references are valid
  mc = labels.label("mc", ctx)
  assert calls == [1]
  for r, (_, t) in zip(mc, pairs):
    n = len(ARITH.split_steps(t)[0])
    assert r["labels"] == [min(i, 2) / 2 for i in range(n)]

  @labels.register("test_first_step_only")
  def first_step_only(ctx):
    return [{"prompt": p.question, "completions": ctx.task.split_steps(t)[0][:1],
             "labels": [True]} for p, t in ctx.pairs]

  assert "test_first_step_only" in labels.sources()
  got = labels.label("test_first_step_only", ctx)
  assert [r["completions"] for r in got] == [[ARITH.split_steps(t)[0][0]] for _, t in pairs]
  with pytest.raises(ValueError, match="annotation, exact, mc"):
    labels.label("humans", ctx)



def test_dedupe_keeps_one_record_per_distinct_sample():
  from types import SimpleNamespace
  import ml_collections
  from s2jax.stages.verifier import training_records
  ps = problems(4, seed=3)
  wrong = [arith.corrupt(p, np.random.default_rng(i))[0] for i, p in enumerate(ps)]
  recs = [dict(p.to_json(), samples=[p.solution, p.solution, "\n".join(w), p.solution])
          for p, w in zip(ps, wrong)]
  config = ml_collections.ConfigDict(dict(
      seed=0, kind="prm", samples={"n": 1}, data={"max_steps": 16},
      labels=dict(source="exact", max_solutions=0, corrupted_per_problem=0, balance=False,
                  dedupe=True, mc_k=1, mc_rollouts=1, mc_mode="hard")))
  policy = SimpleNamespace(task=ARITH, planned=False)
  got, stats = training_records(policy, config, recs)
  assert stats["solutions"] == 16 and stats["unique_solutions"] == 8 and len(got) == 8
  # each problem: its reference once (all valid) and its corrupted prefix once
  assert sorted(sum(r["labels"]) == len(r["labels"]) for r in got) == [False] * 4 + [True] * 4
  config.labels.dedupe = False
  assert len(training_records(policy, config, recs)[0]) == 16


def test_every_label_source_labels_the_same_steps():
  """The label-source sweep compares sources at equal data: each labels every step of
  every solution it is given, so only the labels differ (balancing, which drops records
  by label, is off in that sweep)."""
  import ml_collections
  ps = problems(12, seed=4)
  rng = np.random.default_rng(1)
  pairs = [(p, p.solution if i % 2 else "\n".join(arith.corrupt(p, rng)[0]))
           for i, p in enumerate(ps)]
  cfg = ml_collections.ConfigDict(dict(mc_k=2, mc_mode="hard", max_solutions=0))
  outcomes = [rng.random((len(ARITH.split_steps(t)[0]), 2)) < 0.5 for _, t in pairs]
  steps = {}
  for source in ("exact", "annotation", "mc"):
    recs = labels.label(source, labels.LabelContext(ARITH, pairs, cfg, lambda: outcomes))
    steps[source] = [r["completions"] for r in recs]
    assert [len(r["labels"]) for r in recs] == [len(c) for c in steps[source]]
  assert steps["exact"] == steps["annotation"] == steps["mc"]
  from configs.verifier_arith import label_sources
  assert all(o["labels.balance"] is False and o["labels.corrupted_per_problem"] == 0
             for _, o in label_sources())
