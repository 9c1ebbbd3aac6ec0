import numpy as np
import pytest

from s2jax.tasks import arith
from s2jax.tokenizers import NEWLINE_PIECE, SentencePieceTokenizer, train_sentencepiece


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
  problems = arith.generate_split(arith.TaskConfig(), 300, seed=0)
  path = train_sentencepiece([p.question + "\n" + p.solution for p in problems],
                             str(tmp_path_factory.mktemp("tok") / "sp"), 400)
  return SentencePieceTokenizer(path)


def test_round_trip_and_explicit_newlines(tok):
  for p in arith.generate_split(arith.TaskConfig(families=(0, 1, 2)), 30, seed=1):
    text = p.question + "\n" + p.solution
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert ids.count(tok.newline_id) == text.count("\n")
  assert tok.decode(tok.encode("a\n\nb\n")) == "a\n\nb\n"
  assert tok.sp.id_to_piece(tok.newline_id) == NEWLINE_PIECE


def test_digits_are_single_tokens(tok):
  ids = tok.encode("12345 apples")
  pieces = [tok.sp.id_to_piece(i) for i in ids]
  assert [p for p in pieces if any(c.isdigit() for c in p)] == list("12345")


def test_steps_tokenise_the_same_alone_and_in_context(tok):
  p = arith.generate(arith.TaskConfig(min_steps=3), np.random.default_rng(0))
  steps, _ = arith.split_steps(p.solution)
  ids = tok.encode(p.solution)
  pieces, cur = [], []
  for i in ids:
    if i == tok.newline_id:
      pieces.append(cur)
      cur = []
    else:
      cur.append(i)
  assert pieces[:len(steps)] == [tok.encode(s) for s in steps]


def test_special_ids_and_decode_skips_them(tok):
  assert len({tok.pad_id, tok.bos_id, tok.eos_id, tok.newline_id}) == 4
  ids = [tok.bos_id] + tok.encode("Ada has 3 apples.") + [tok.eos_id, tok.pad_id]
  assert tok.decode(ids) == "Ada has 3 apples."


def test_unseen_text_still_encodes(tok):
  assert tok.decode(tok.encode("Zürich ☃ 42")) == "Zürich ☃ 42"


def test_missing_or_foreign_model_file(tmp_path):
  with pytest.raises(FileNotFoundError, match="not found"):
    SentencePieceTokenizer(str(tmp_path / "nope.model"))
  with pytest.raises(ValueError, match="empty corpus"):
    train_sentencepiece([], str(tmp_path / "x"))


def test_step_end_positions_agree_between_training_and_scoring(tok):
  """The label position of a step is the same whether the solution is built from its
  steps (training) or read back from generated ids (scoring)."""
  from s2jax.data import steps as steps_lib
  for p in arith.generate_split(arith.TaskConfig(min_steps=2, max_steps=6), 20, seed=4):
    lines, final = arith.split_steps(p.solution)
    ids, ends = steps_lib.encode_steps(tok, lines, final)
    assert ids[:-1] == tok.encode(p.solution) and ids[-1] == tok.eos_id
    assert steps_lib.step_end_positions(ids, tok.step_end_id, tok.eos_id) == ends
    for line, end in zip(lines, ends):
      # Each step's tokens (alone) sit right before its end-of-step token (in context).
      n = len(tok.encode(line))
      assert ids[end - n:end] == tok.encode(line)
  pos, valid = steps_lib.pad_positions([[1, 4], [2]])
  assert pos.tolist() == [[1, 4], [2, 0]] and valid.tolist() == [[True, True], [True, False]]
  with pytest.raises(ValueError, match="single line"):
    steps_lib.encode_steps(tok, ["a\nb"])
