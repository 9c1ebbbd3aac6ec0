"""GSM8K data: both sources, answer extraction on real-looking output, prompt formats."""
import math
import os
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s2jax.data import gsm8k, prompts
from s2jax import tasks
from s2jax.evaluation import judge

GSM8K_DIR = gsm8k.DEFAULT_DIR  # the release the package ships

# (model output, the answer a grader must read from it)
REAL_LOOKING = [
    ("She makes 9 * 2 = $<<9*2=18>>18 every day.\n#### 18", 18),
    ("#### 1,234", 1234),
    ("#### $70,000", 70000),
    ("#### -5", -5),
    ("#### 0.75\n\nQuestion: next problem with 12 apples", 0.75),
    ("The answer is 42.", 42),
    ("So the answer is $1,500.00 in total.", 1500),
    ("Therefore, the final answer is: 3/4 of a cup", 0.75),
    ("The answer is: **17** apples", 17),
    ("We get $\\boxed{128}$.", 128),
    ("\\boxed{\\text{36}} dollars", 36),
    ("So he spends 5 + 7 = 12 dollars.\nHe has 20 - 12 = 8 dollars left.", 8),
    ("The temperature dropped to -12 degrees.", -12),
    ("It costs 3.5 dollars per pound, so 7 pounds cost 24.5 dollars", 24.5),
    ("That is 25% of the class", 25),
    ("Answer: 1,000,000 people", 1000000),
    ("the answer is 5 and not 6", 5),
    ("no number here", None),
    ("", None),
]


@pytest.mark.parametrize("output,expected", REAL_LOOKING)
def test_extract_answer_real_looking_cases(output, expected):
  got = gsm8k.extract_answer(output)
  if expected is None:
    assert got is None
  else:
    assert got == pytest.approx(expected)


@given(value=st.one_of(st.integers(-10**7, 10**7),
                       st.decimals(-10**5, 10**5, places=2, allow_nan=False,
                                   allow_infinity=False).map(float)),
       template=st.sampled_from([
           "#### {}", "The answer is {}.", "So the answer is {} dollars", "\\boxed{{{}}}",
           "Step one gives 3.\nIn total she pays {} for everything",
           "Final answer: {} units\n\nQuestion: 99 cats"]),
       commas=st.booleans(), currency=st.booleans())
def test_extract_answer_property(value, template, commas, currency):
  text = f"{value:,}" if commas else f"{value}"
  if currency:
    text = "-$" + text[1:] if text.startswith("-") else "$" + text
  assert gsm8k.extract_answer(template.format(text)) == pytest.approx(value)


def test_to_number_rejects_garbage():
  assert gsm8k.to_number("3/0") is None
  assert gsm8k.to_number("1-2") is None
  assert gsm8k.to_number("-$3") == -3


def test_jsonl_source_reads_the_official_release():
  test = gsm8k.load("test", data_dir=GSM8K_DIR)
  assert len(test) == 1319
  assert test[0]["question"].startswith("Janet")
  assert gsm8k.reference_answer(test[0]) == 18
  assert len(gsm8k.load("train", data_dir=GSM8K_DIR, limit=5)) == 5
  # Every gold answer in the release parses.
  assert all(gsm8k.reference_answer(r) is not None for r in test)


def test_load_errors_name_the_problem(tmp_path):
  with pytest.raises(ValueError, match="split 'dev' does not exist"):
    gsm8k.load("dev", data_dir=GSM8K_DIR)
  with pytest.raises(ValueError, match="source 'csv' is unknown"):
    gsm8k.load("test", source="csv", data_dir=GSM8K_DIR)
  with pytest.raises(FileNotFoundError, match="not found"):
    gsm8k.load("test", data_dir=str(tmp_path))
  (tmp_path / "test.jsonl").write_text('{"question": "q"}\n')
  with pytest.raises(ValueError, match=r"test.jsonl:1: missing key\(s\) \['answer'\]"):
    gsm8k.load("test", data_dir=str(tmp_path))


def test_the_shipped_release_is_the_official_one():
  """The checksums the shipped README records are those of the files beside it, and they
  are the openai/grade-school-math release's (7473 train, 1319 test problems)."""
  import hashlib
  readme = open(os.path.join(GSM8K_DIR, "README.md")).read()
  listed = dict(re.findall(r"\| (\w+\.jsonl) \| \d+ \| ([0-9a-f]{64}) \|", readme))
  assert listed == {
      "train.jsonl": "17f347dc51477c50d4efb83959dbb7c56297aba886e5544ee2aaed3024813465",
      "test.jsonl": "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14"}
  for name, digest in listed.items():
    with open(os.path.join(GSM8K_DIR, name), "rb") as f:
      assert hashlib.sha256(f.read()).hexdigest() == digest, name
  assert "MIT License" in open(os.path.join(GSM8K_DIR, "LICENSE")).read()
  assert len(gsm8k.load("train")) == 7473


def test_tfds_source_built_from_the_jsonl_reads_back_equal(tmp_path):
  """TFDS's builder machinery over the shipped JSONL (array_record, no TensorFlow), read
  back through load(source="tfds"): record for record the JSONL source, in order."""
  from s2jax.data import gsm8k_tfds
  with pytest.raises(FileNotFoundError, match="no prepared TFDS gsm8k"):
    gsm8k.load("test", source="tfds", data_dir=str(tmp_path))
  with pytest.raises(ValueError, match="needs data_dir"):
    gsm8k.load("test", source="tfds")
  built = gsm8k_tfds.prepare(str(tmp_path), GSM8K_DIR)
  assert built == str(tmp_path / "gsm8k" / "1.0.0")
  for split in ("train", "test"):
    assert gsm8k.load(split, source="tfds", data_dir=str(tmp_path)) == gsm8k.load(split)
  assert gsm8k.load("test", source="tfds", data_dir=built, limit=2) == gsm8k.load("test", limit=2)
  short = gsm8k_tfds.read("test", built, keys=("short_answer",))[0]["short_answer"]
  assert float(short) == gsm8k.reference_answer(gsm8k.load("test", limit=1)[0]) == 18


def test_no_test_or_config_reads_outside_the_repository():
  """Everything the tests and configs need ships with the repository (no ../shared)."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  offenders = []
  for folder in ("tests", "configs", "s2jax", "experiments", "benchmarks", ".ci"):
    for dirpath, _, files in os.walk(os.path.join(root, folder)):
      for name in files:
        if name.endswith((".py", ".sh", ".ini")) or folder == ".ci":
          text = open(os.path.join(dirpath, name), errors="replace").read()
          if re.search(r"\.\./shared|\"shared\", \"data\"", text) and name != "test_gsm8k.py":
            offenders.append(os.path.join(dirpath, name))
  assert offenders == []


def test_judge_grades_real_model_output():
  rec = gsm8k.load("test", data_dir=GSM8K_DIR, limit=1)[0]
  good = judge(tasks.get("gsm8k"), rec,
               "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\nThe answer is $18.")
  assert good["correct"] and good["steps"][0]["valid"]
  bad = judge(tasks.get("gsm8k"), rec, "Janet sells 16 - 3 = <<16-3=12>>12 eggs.\n#### 24")
  assert not bad["correct"] and not bad["steps"][0]["valid"]


class _CharTokenizer:
  """Enough of the tokenizer interface for prompt formats: one id per character."""
  bos_id, eos_id, pad_id, newline_id = 1, 2, 0, ord("\n")

  def encode(self, text):
    return [ord(c) for c in text]

  def apply_chat_template(self, messages, add_generation_prompt=True):
    body = "".join(f"<{m['role']}>{m['content']}</s>\n" for m in messages)
    return body + ("<assistant>\n" if add_generation_prompt else "")


def test_prompt_formats():
  tok = _CharTokenizer()
  train = gsm8k.load("train", data_dir=GSM8K_DIR, limit=8)
  plain = prompts.PLAIN.ids(tok, "2+2?")
  assert plain == [1] + tok.encode("2+2?") + [tok.newline_id]
  few = prompts.from_config({"kind": "fewshot", "num_shots": 2}, train)
  text = few.text("How many?")
  assert text.count("Question: ") == 3 and text.endswith("Question: How many?\nAnswer:\n")
  assert text.startswith("Question: " + train[0]["question"] + "\nAnswer:\n" + train[0]["answer"])
  assert few.cut("He has 3.\n#### 3\n\nQuestion: more") == "He has 3.\n#### 3"
  chat = prompts.from_config({"kind": "chat", "system": "Be brief."})
  ids = chat.ids(tok, "How many?")
  assert "".join(map(chr, ids)).startswith("<system>Be brief.</s>\n<user>Solve")
  assert chat.stop_ids(tok) == ()
  with pytest.raises(ValueError, match="kind='essay' must be one of"):
    prompts.from_config({"kind": "essay"})
  with pytest.raises(ValueError, match="asked for 9 few-shot exemplars"):
    prompts.from_config({"kind": "fewshot", "num_shots": 9}, train)


def test_wilson_interval():
  from s2jax.metrics import wilson_interval
  for k, n in ((20, 1319), (3, 50), (49, 50)):  # the score interval's formula, by hand
    z, p = 1.959964, k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert wilson_interval(k, n) == pytest.approx((centre - half, centre + half), abs=1e-6)
  assert wilson_interval(0, 10)[0] == pytest.approx(0.0)
  assert wilson_interval(10, 10)[1] == pytest.approx(1.0)
  with pytest.raises(ValueError):
    wilson_interval(0, 0)
