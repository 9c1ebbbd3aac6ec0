"""A base policy exported from an SFT workdir loads bit for bit, is checked by its hash,
and starts an SFT run (s2jax.base_policy)."""
import json
import os
import shutil

import flax
import jax
import numpy as np
import pytest

from s2jax import base_policy, report, workdirs
from s2jax.stages import sft


@pytest.fixture(scope="module")
def exported(tiny_pipeline, tmp_path_factory):
  source = os.path.join(tiny_pipeline["workdir"], "sft")
  out = str(tmp_path_factory.mktemp("base") / "policy")
  return source, out, base_policy.export(source, out)


def _tiny_config_like_the_pipeline(tiny_config):
  """arith.py:tiny with what the tiny pipeline's SFT trains (plan format, calculator)."""
  c = tiny_config()
  c.data.update(format="plan", tool_tokens="mask")
  c.eval.calculator = True
  return c


def _flat(params):
  return flax.traverse_util.flatten_dict(jax.device_get(params), sep="/")


def test_export_round_trips_the_weights_and_records_hash_and_accuracy(exported):
  source, out, meta = exported
  m = workdirs.load_model(source)
  base = base_policy.load(out)
  assert meta["sha256"] == base_policy.sha256(os.path.join(out, "params.npz"))
  want, got = _flat(m.params), base.host_params()
  got = flax.traverse_util.flatten_dict(got, sep="/")
  assert set(want) == set(got)
  for k in want:
    np.testing.assert_array_equal(np.asarray(want[k]), got[k])
  # The recorded accuracy is what greedy decoding gives on the same 100 problems.
  again = base_policy.accuracy(m.model, m.params, m.tokenizer, base.meta)
  assert again == meta["check"] and meta["check"]["n"] == base_policy.CHECK_PROBLEMS
  assert meta["launches"] == report.read_launches(source)  # a pipeline stage: none of its own


def test_sft_starts_from_the_base_policy(exported, tiny_config, tmp_path):
  _, out, _ = exported
  c = _tiny_config_like_the_pipeline(tiny_config)
  c.init_from = out
  c.model.d_model = 999  # replaced by the policy's model
  c.train.steps = 0
  c.eval.enabled = False
  sft.run(c, str(tmp_path))
  m = workdirs.load_model(str(tmp_path))
  assert m.config.model.d_model != 999
  got = _flat(m.params)
  with np.load(os.path.join(out, "params.npz")) as f:
    for k in f.files:
      np.testing.assert_array_equal(np.asarray(got[k]), f[k])


def test_a_changed_file_or_another_format_is_refused(exported, tiny_config, tmp_path):
  _, out, _ = exported
  bad = str(tmp_path / "bad")
  shutil.copytree(out, bad)
  meta = json.load(open(os.path.join(bad, "policy.json")))
  meta["sha256"] = "0" * 64
  json.dump(meta, open(os.path.join(bad, "policy.json"), "w"))
  with pytest.raises(ValueError, match="SHA-256"):
    base_policy.load(bad).host_params()
  c = _tiny_config_like_the_pipeline(tiny_config)
  c.init_from = out
  c.data.format = "cot"
  with pytest.raises(ValueError, match="data.format='plan'"):
    sft.run(c, str(tmp_path / "run"))
  with pytest.raises(FileNotFoundError, match="no_such_policy"):
    base_policy.load("no_such_policy")


def test_the_shipped_base_policy_has_its_hash_and_accuracy():
  """s2jax/assets/arith_base (configs/base_policy.py): the weights are the ones exported
  (host_params checks the SHA-256), and greedy decoding on its 100 check problems gives
  the accuracy policy.json records, which meets the testbed's targets."""
  base = base_policy.load("arith_base")
  model, params, tok = base.model()
  got = base_policy.accuracy(model, params, tok, base.meta)
  want = base.meta["check"]
  assert got["n"] == want["n"] == base_policy.CHECK_PROBLEMS
  # Greedy decoding is deterministic; 0.02 (two problems) allows for another XLA build.
  assert abs(got["accuracy"] - want["accuracy"]) <= 0.02
  assert abs(got["fully_valid"] - want["fully_valid"]) <= 0.02
  assert want["accuracy"] >= 0.6 and want["fully_valid"] >= 0.5


def test_a_run_from_given_weights_curves_its_start_problem_by_problem(exported, tiny_config,
                                                                      tmp_path):
  """With `train.eval_every`, a run from a base policy writes a curve point at step 0 (the
  base policy's own greedy outcomes, re-derived here by evaluating the exported weights)
  and one per `eval_every` steps, each with its per-problem outcomes beside the metrics."""
  from s2jax import evaluation, pretrained, tasks
  from s2jax.data import gsm8k
  from s2jax.metrics import read_metrics
  _, out, _ = exported
  c = _tiny_config_like_the_pipeline(tiny_config)
  c.init_from = out
  c.train.update(steps=2, eval_every=2)
  c.eval.update(enabled=False, curve_problems=6)
  sft.run(c, str(tmp_path))
  curve = {s: json.load(open(tmp_path / "curve" / f"step{s}.json")) for s in (0, 2)}
  m = workdirs.load_model(str(tmp_path), 2)
  base_params = base_policy.load(out).host_params()
  records = gsm8k.read_jsonl(str(tmp_path / "data" / "test.jsonl"))[:6]
  _, want = evaluation.evaluate_records(
      pretrained.sampler_for(m.model, m.tokenizer, m.config), base_params, m.tokenizer,
      records, task=tasks.for_config(m.config), batch_size=c.eval.batch_size,
      max_new_tokens=c.eval.max_new_tokens)
  assert curve[0]["per_problem"] == want["per_problem"]
  logged = {r["step"]: r for r in read_metrics(str(tmp_path / "metrics.jsonl"))
            if "curve/accuracy" in r}
  assert sorted(logged) == [0, 2]
  for s in (0, 2):
    assert len(curve[s]["per_problem"]["correct"]) == 6
    assert logged[s]["curve/accuracy"] == np.mean(curve[s]["per_problem"]["correct"])


def test_the_shipped_first_phase_is_what_the_base_policy_continues():
  """configs/base_policy.py continues s2jax/assets/arith_sft4k (4,000 steps from scratch,
  its `:scratch4k` variant); the file is the one recorded (host_params checks the hash),
  and its recorded config is the scratch4k variant's."""
  from s2jax.config import load_config_file
  from tests.conftest import ROOT
  first = base_policy.load("arith_sft4k")
  first.host_params()
  cont = load_config_file(os.path.join(ROOT, "configs", "base_policy.py"))
  scratch = load_config_file(os.path.join(ROOT, "configs", "base_policy.py:scratch4k"))
  assert cont.init_from == "arith_sft4k" and scratch.init_from == ""
  for block, key in (("train", "steps"), ("data", "num_train"), ("optim", "lr"), ("seed", None)):
    want = scratch[block] if key is None else scratch[block][key]
    got = first.meta["config"][block] if key is None else first.meta["config"][block][key]
    assert got == want, (block, key)
