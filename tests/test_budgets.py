"""Every generation budget of the main job holds the longest reference of each split it
generates for: a budget below it would measure truncation."""
import os

import pytest

from s2jax import budgets, tasks
from s2jax.config import load_config_file
from s2jax.tokenizers import SentencePieceTokenizer, train_sentencepiece
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def pipeline_and_tokenizer(tmp_path_factory):
  """configs/pipeline.py and the tokenizer of the base policy its SFT stage starts from
  (or, from scratch, the one it trains: same data, same size)."""
  from s2jax import base_policy
  c = load_config_file(os.path.join(ROOT, "configs", "pipeline.py"))
  if c.sft.init_from:
    return c, SentencePieceTokenizer(base_policy.load(c.sft.init_from).tokenizer_path)
  task = tasks.for_config(c.sft)
  train = task.generate_split(c.sft, "train", c.sft.tokenizer.corpus_size)
  path = train_sentencepiece([p.question + "\n" + p.solution for p in train],
                             str(tmp_path_factory.mktemp("tok") / "tok"),
                             c.sft.tokenizer.vocab_size)
  return c, SentencePieceTokenizer(path)


def test_the_main_jobs_budgets_hold_every_reference(pipeline_and_tokenizer):
  c, tok = pipeline_and_tokenizer
  assert budgets.check_pipeline(c, tok) == []


def test_a_budget_that_truncates_is_named(pipeline_and_tokenizer):
  c, tok = pipeline_and_tokenizer
  longest = budgets.longest_reference(c.sft, "shift_steps", c.sft.data.num_eval, tok)
  c = load_config_file(os.path.join(ROOT, "configs", "pipeline.py"))
  c.sft.eval.max_new_tokens = longest["solution"]  # fits, but not with the margin
  c.search.beam.max_depth = longest["steps"] - 1
  errors = budgets.check_pipeline(c, tok)
  assert any(e.startswith("sft.eval.max_new_tokens=") and "shift_steps" in e for e in errors)
  assert any(e.startswith("search.beam.max_depth=") for e in errors)
  assert len(errors) == 2, errors


def test_the_ablations_pipeline_budgets_hold_500_problems_per_split(pipeline_and_tokenizer):
  _, tok = pipeline_and_tokenizer
  c = load_config_file(os.path.join(ROOT, "configs", "pipeline.py:eval500"))
  assert budgets.check_pipeline(c, tok, n=c.sft.data.num_eval) == []


GRIDS = {  # ablation: (the SFT block its policies train with, grid axes, training formats)
    "domain_shift": (lambda c: c.pipeline.sft, lambda c: c.axes.to_dict(), ()),
    "working_memory": (lambda c: c.scratch_sft,
                       lambda c: {a: tuple(c.entities)
                                  for a in ("entities_chain", "entities_distractors")}, ()),
    "filler_tokens": (lambda c: c.scratch_sft, lambda c: {"steps": tuple(c.depths)},
                      ("cot", "direct", "filler")),
}


@pytest.mark.parametrize("name", sorted(GRIDS))
def test_every_ablation_grid_budget_holds_its_references(name, pipeline_and_tokenizer):
  # Scratch arms train their own tokenizer on the same task data at the same vocabulary
  # size; the base policy's stands in for it.
  from s2jax.ablations import common
  _, tok = pipeline_and_tokenizer
  c = load_config_file(os.path.join(ROOT, "configs", "ablations", f"{name}.py"))
  sft_of, axes_of, fmts = GRIDS[name]
  errors = common.grid_budget_errors(
      sft_of(c), axes_of(c), seeds=c.seeds, num_problems=c.num_problems,
      max_new_tokens=c.max_new_tokens, max_cache_len=c.max_cache_len, tokenizer=tok,
      formats=fmts)
  assert errors == []


def test_a_grid_budget_that_truncates_is_named(pipeline_and_tokenizer):
  from s2jax.ablations import common
  c, tok = pipeline_and_tokenizer
  axes = {"steps": (1, 6)}
  six = common.grid_problems(c.sft.task.to_dict(), {"min_steps": 6, "max_steps": 6}, 20, 0,
                             "grid_steps_6")
  need = budgets.longest_of(six, tasks.for_config(c.sft),
                            "plan", tok)["solution"]
  errors = common.grid_budget_errors(c.sft, axes, seeds=(0,), num_problems=20,
                                     max_new_tokens=need, max_cache_len=need + 4,
                                     tokenizer=tok)
  # 6 steps do not fit without the margin; 1 step does; no prompt fits in 4 tokens.
  assert [e.split(" ")[0:3] for e in errors if "truncates" in e] == [
      ["max_new_tokens=%d" % need, "truncates", "steps=6"]]
  assert sum("max_cache_len" in e for e in errors) == 2
