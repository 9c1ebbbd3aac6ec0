
import numpy as np
import pytest

from s2jax.data import stepwise
from tests.test_tokenizers import tok  # noqa: F401  (fixture)


def test_round_trip_and_prm_batch_positions(tmp_path, tok):  # noqa: F811
  recs = [{"prompt": "Ada has 3 apples. Ben has 2 more apples than Ada. How many?",
           "completions": ["Ben has 3+2 = <<3+2=5>>5 apples.", "#### 5"], "labels": [True, True]},
          {"prompt": "Q?", "completions": ["Ben has 1+1 = <<1+1=3>>3 apples."], "labels": [False]}]
  path = str(tmp_path / "steps.jsonl")
  stepwise.write_stepwise(path, recs)
  assert stepwise.read_stepwise(path) == recs
  batch = stepwise.prm_batch(tok, recs, 64, 3)
  for i, r in enumerate(recs):
    ends = batch["step_pos"][i][batch["step_valid"][i]]
    assert len(ends) == len(r["completions"])
    assert all(batch["tokens"][i, e] == tok.step_end_id for e in ends)
    np.testing.assert_array_equal(batch["step_labels"][i, :len(ends)], r["labels"])


@pytest.mark.parametrize("line,match", [
    ('{"prompt": "q", "completions": ["a"], "labels": [true, false]}', "1 completions but 2"),
    ('{"prompt": "q", "completions": ["a\\nb"], "labels": [true]}', "one-line"),
    ('{"prompt": "q", "completions": [], "labels": []}', "no steps"),
    ('{"prompt": 3, "completions": ["a"], "labels": [true]}', "'prompt' must be a str"),
    ('{"prompt": "q", "completions": ["a"], "labels": [2]}', "label 0"),
    ("not json", "not valid JSON")])
def test_bad_stepwise_records_are_named(tmp_path, line, match):
  p = tmp_path / "bad.jsonl"
  p.write_text(line + "\n")
  with pytest.raises(ValueError, match=match):
    stepwise.read_stepwise(str(p))
