"""Every generation budget of the main job holds the longest reference of each split it
generates for: a budget below it would measure truncation."""
import os

import pytest

from s2jax import budgets
from s2jax.config import load_config_file
from s2jax.tokenizers import SentencePieceTokenizer, train_sentencepiece
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def pipeline_and_tokenizer(tmp_path_factory):
  """configs/pipeline.py and the tokenizer of the base policy its SFT stage starts from
  (or, from scratch, the one it trains: same data, same size)."""
  from s2jax import base_policy, tasks
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
