"""Every pipeline stage on GSM8K from a pretrained checkpoint, through config alone.

The fast test starts from a tiny random Llama written as a Hugging Face directory (with
SmolLM2's real tokenizer.json and chat template); the slow one from the real
SmolLM2-135M-Instruct GGUF (`pytest -m slow`). Both run the same configs:
configs/gsm8k_smollm2.py with `<stage>,tiny` with its stage argument.
"""
import json
import os

import numpy as np
import pytest

from s2jax.config import load_config_file
from s2jax.models import convert
from s2jax.models.transformer import ModelConfig
from s2jax.tokenizers import HFTokenizer


def stage_config(root, stage, checkpoint):
  c = load_config_file(os.path.join(root, "configs", f"gsm8k_smollm2.py:{stage},tiny")
                       if stage else os.path.join(root, "configs", "gsm8k_smollm2.py:tiny"))
  if not stage:  # data.dir stays the config's default: the release the package ships
    c.pretrained.path = checkpoint
  return c


def run_stages(root, tmp_path, checkpoint):
  from s2jax.stages import distill as distill_stage, rl as rl_stage, search as search_stage
  from s2jax.stages import sft, verifier as verifier_stage
  out = {"sft": str(tmp_path / "sft"), "prm": str(tmp_path / "prm"),
         "distill": str(tmp_path / "distill"), "ppo": str(tmp_path / "ppo")}
  out["sft_result"] = sft.run(stage_config(root, "", checkpoint), out["sft"])
  c = stage_config(root, "verifier", checkpoint)
  c.policy_workdir = out["sft"]
  out["prm_summary"] = verifier_stage.run(c, out["prm"])
  # Search runs on GSM8K records through the task interface (answers by extract_answer).
  c = load_config_file(os.path.join(root, "configs", "search_arith.py:tiny"))
  c.update(policy_workdir=out["sft"], prm_workdir=out["prm"], num_problems=2, ns=(1, 2))
  c.sampling.update(batch_size=4, max_new_tokens=16, max_cache_len=512)
  c.beam.update(budgets=(4,), max_depth=2, max_step_tokens=8, batch_size=4)
  c.score_batch_size = 4
  out["search"] = search_stage.run(c, str(tmp_path / "search"))
  c = stage_config(root, "distill", checkpoint)
  c.policy_workdir, c.prm_workdir = out["sft"], out["prm"]
  out["distill_log"] = distill_stage.run(c, out["distill"])
  c = stage_config(root, "ppo", checkpoint)
  c.policy_workdir, c.prm_workdir = out["sft"], out["prm"]
  out["ppo_result"] = rl_stage.run(c, out["ppo"])
  return out


def check_stages(out):
  with open(os.path.join(out["sft"], "config.json")) as f:
    saved = json.load(f)
  # The workdir is self-contained: the checkpoint's model and vocabulary, the prompt.
  assert saved["model"]["vocab_size"] == 49152 and saved["prompt"]["kind"] == "chat"
  assert os.path.isabs(saved["tokenizer"]["path"])
  assert len(open(os.path.join(out["sft"], "data", "train.jsonl")).readlines()) == 16
  assert out["sft_result"]["eval"]["test"]["n"] == 4
  with open(os.path.join(out["sft"], "eval", "test.jsonl")) as f:
    first = json.loads(f.readline())
  assert first["checker"] == "annotation" and first["question"].startswith("Janet")
  assert out["prm_summary"]["data"]["solutions"] > 0
  search = out["search"]["splits"]
  assert list(search) == ["test"] and search["test"]["n_problems"] == 2
  beam = search["test"]["methods"]["PRM beam search"]
  assert [x["n"] for x in beam] == [4] and beam[0]["tokens"] > 0
  assert [x["n"] for x in search["test"]["methods"]["majority vote"]] == [1, 2]
  rounds = out["distill_log"]["rounds"]
  assert [r["round"] for r in rounds] == [0, 1] and set(rounds[1]["eval"]) == {"test"}
  assert "test" in out["ppo_result"]["evals"][-1]["accuracy"]


@pytest.fixture(scope="module")
def tiny_pretrained(tmp_path_factory):
  """A 2-layer random Llama with SmolLM2's vocabulary, as a Hugging Face directory."""
  from s2jax import sharding
  from s2jax.models.transformer import Transformer
  import jax
  directory = str(tmp_path_factory.mktemp("tiny_llama"))
  cfg = ModelConfig(vocab_size=49152, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2,
                    mlp_dim=64, tie_embeddings=True)
  params, _ = sharding.init_params(Transformer(cfg), jax.random.key(0),
                                   sharding.make_mesh((1, 1, 1), jax.devices()[:1]))
  tok = HFTokenizer.from_gguf(convert.smollm2_gguf_path())
  convert.save_hf_dir(directory, jax.tree.map(np.asarray, params), cfg, tok)
  return directory


def test_every_stage_runs_on_gsm8k_from_a_hf_checkpoint(root, tmp_path, tiny_pretrained):
  check_stages(run_stages(root, tmp_path, tiny_pretrained))


def test_eval_gsm8k_resumes_and_reports_a_wilson_interval(root, tmp_path, tiny_pretrained):
  from s2jax.stages import eval_gsm8k
  c = stage_config(root, "", tiny_pretrained)
  c.eval.chunk = 2
  s = eval_gsm8k.run(c, str(tmp_path), limit=2)
  assert s["n"] == 2 and s["correct"] == 0  # a random model
  z = 1.959964  # Wilson upper bound at 0 of n=2: z^2 / (n + z^2)
  assert s["wilson95"] == pytest.approx([0.0, z ** 2 / (2 + z ** 2)])
  s = eval_gsm8k.run(c, str(tmp_path), limit=4)  # keeps the first 2, adds 2
  lines = open(tmp_path / "outputs.jsonl").readlines()
  assert s["n"] == 4 and len(lines) == 4 and s["prompt"]["kind"] == "chat"
  assert s["run_info"]["started"] <= s["last_run"]["started"]
  c.prompt.kind = "fewshot"
  with pytest.raises(ValueError, match="outputs of other problems"):
    (tmp_path / "outputs.jsonl").write_text(lines[1] + lines[0])
    eval_gsm8k.run(c, str(tmp_path), limit=4)
  # The calculator tool on SmolLM2's vocabulary (digits and '>>' are single tokens).
  c = stage_config(root, "", tiny_pretrained)
  c.eval.calculator = True
  s = eval_gsm8k.run(c, str(tmp_path / "calc"), limit=2)
  assert s["calculator"] and s["n"] == 2


@pytest.mark.slow
def test_every_stage_runs_on_gsm8k_from_smollm2_gguf(root, tmp_path):
  check_stages(run_stages(root, tmp_path, ""))


def test_gsm8k_config_errors_are_named(root, tmp_path):
  from s2jax.stages import sft
  with pytest.raises(ValueError, match=r"unknown get_config argument\(s\) \['rl'\]"):
    load_config_file(os.path.join(root, "configs", "gsm8k_smollm2.py:rl"))
  c = stage_config(root, "", "")
  c.data.source = "csv"
  with pytest.raises(ValueError, match="data.source='csv' must be"):
    sft.run(c, str(tmp_path / "a"))
  c = stage_config(root, "", str(tmp_path / "nowhere.gguf"))
  with pytest.raises(FileNotFoundError, match="GGUF file not found"):
    sft.run(c, str(tmp_path / "b"))
