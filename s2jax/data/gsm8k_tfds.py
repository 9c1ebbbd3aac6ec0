"""GSM8K as a TensorFlow Datasets dataset, built from local JSONL and read without TensorFlow.

TFDS's catalog builder (`tfds build gsm8k`) downloads the release; this one is the same
dataset (name, version and features as TFDS's) prepared from a directory of the release's
JSONL with TFDS's own machinery for local files: a GeneratorBasedBuilder over its
manual_dir. It writes the array_record format, which `builder_from_directory(...)
.as_data_source()` reads by random access with no TensorFlow installed, and it keeps the
release's order (shuffling off), so the TFDS source equals the JSONL source record for
record. A directory prepared by the catalog builder in array_record format reads the same
way (in TFDS's shuffled order).
"""
from __future__ import annotations

import json
import os

import tensorflow_datasets as tfds

NAME = "gsm8k"
VERSION = "1.0.0"
FEATURES = ("question", "answer", "annotation", "short_answer")  # as TFDS's catalog builder
SPLITS = ("train", "test")


class Gsm8kFromJsonl(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """TFDS's gsm8k from the release's train.jsonl / test.jsonl in `manual_dir`."""
  name = NAME
  VERSION = tfds.core.Version(VERSION)
  MANUAL_DOWNLOAD_INSTRUCTIONS = "A directory holding the GSM8K release's train.jsonl and test.jsonl."

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self, description="GSM8K (Cobbe et al. 2021), the official release.",
        features=tfds.features.FeaturesDict({k: tfds.features.Text() for k in FEATURES}),
        homepage="https://github.com/openai/grade-school-math", disable_shuffling=True)

  def _split_generators(self, dl_manager):
    return {s: self._generate_examples(os.path.join(dl_manager.manual_dir, f"{s}.jsonl"))
            for s in SPLITS}

  def _generate_examples(self, path):
    with open(path, encoding="utf-8") as f:
      for i, line in enumerate(f):
        r = json.loads(line)
        annotation, _, short = r["answer"].rpartition("#### ")
        yield i, {"question": r["question"], "answer": r["answer"],
                  "annotation": annotation, "short_answer": short}


def prepare(data_dir: str, jsonl_dir: str) -> str:
  """Build the dataset under the TFDS data directory `data_dir` from the JSONL release in
  `jsonl_dir`; returns the prepared directory (<data_dir>/gsm8k/<version>). A directory
  already prepared is kept."""
  builder = Gsm8kFromJsonl(data_dir=data_dir, file_format="array_record")
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=jsonl_dir))
  return str(builder.data_dir)


def prepared_dir(data_dir: str) -> str:
  """The prepared dataset directory in `data_dir`: `data_dir` itself when it holds a
  dataset_info.json, else the newest <data_dir>/gsm8k/<version>."""
  if os.path.exists(os.path.join(data_dir, "dataset_info.json")):
    return data_dir
  root = os.path.join(data_dir, NAME)
  versions = sorted((v for v in os.listdir(root)
                     if os.path.exists(os.path.join(root, v, "dataset_info.json"))),
                    key=lambda v: tuple(int(x) for x in v.split(".")),
                    ) if os.path.isdir(root) else []
  if not versions:
    raise FileNotFoundError(
        f"no prepared TFDS gsm8k in {data_dir!r} (expected {root}/<version>/"
        "dataset_info.json); build one from the release's JSONL with "
        "s2jax.data.gsm8k_tfds.prepare(data_dir, jsonl_dir), or with `tfds build gsm8k "
        "--file_format=array_record` where the internet is reachable")
  return os.path.join(root, versions[-1])


def read(split: str, data_dir: str, keys=("question", "answer")) -> list[dict]:
  """The split's records ({key: str}) from a prepared directory, in its stored order."""
  builder = tfds.builder_from_directory(prepared_dir(data_dir))
  if split not in builder.info.splits:
    raise ValueError(f"the TFDS gsm8k in {builder.data_dir} has no split {split!r}; "
                     f"it has {sorted(builder.info.splits)}")
  fmt = builder.info.file_format
  if fmt != tfds.core.FileFormat.ARRAY_RECORD:
    raise ValueError(f"the TFDS gsm8k in {builder.data_dir} is stored as {fmt}; reading it "
                     "needs TensorFlow. Prepare it with --file_format=array_record")
  source = builder.as_data_source(split=split)
  out = []
  for i in range(len(source)):
    ex = source[i]
    out.append({k: ex[k].decode("utf-8") if isinstance(ex[k], bytes) else str(ex[k])
                for k in keys})
  return out
