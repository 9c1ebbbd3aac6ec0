"""End-to-end: SFT runs, resumes after a kill, stops on NaN, rejects bad input; evaluate.py
grades checkpoints on generated and real GSM8K files."""
import json
import os
import signal
import subprocess
import sys
import time

import jax.numpy as jnp
import pytest

from s2jax.stages import sft
from s2jax import checkpoints
from s2jax.data import gsm8k
from s2jax.metrics import read_metrics
from s2jax.tokenizers import SentencePieceTokenizer

GSM8K_TEST = os.path.join(gsm8k.DEFAULT_DIR, "test.jsonl")  # the release the package ships


def env(devices=1):
  e = dict(os.environ)
  e["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  e["JAX_PLATFORMS"] = "cpu"
  e["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  return e


def sft_cmd(root, workdir, *overrides):
  return [sys.executable, os.path.join(root, "experiments", "sft.py"),
          f"--config={os.path.join(root, 'configs', 'arith.py:tiny')}", f"--workdir={workdir}",
          *overrides]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_config):
  workdir = str(tmp_path_factory.mktemp("sft"))
  result = sft.run(tiny_config(), workdir)
  return workdir, result


def test_sft_writes_everything(trained, tiny_config):
  workdir, result = trained
  assert result["final_step"] == tiny_config().train.steps
  for f in ("config.json", "tokenizer.model", "metrics.jsonl", "eval/summary.json",
            "eval/test.jsonl", "eval/shift_steps.jsonl", "data/train.jsonl"):
    assert os.path.exists(os.path.join(workdir, f)), f
  summary = json.load(open(os.path.join(workdir, "eval", "summary.json")))
  assert set(summary) == {"test", "shift_steps"}
  assert "by_num_steps" in summary["test"]
  rec = gsm8k.read_jsonl(os.path.join(workdir, "eval", "test.jsonl"), required=("output",))[0]
  assert rec["checker"] == "exact" and "steps" in rec
  losses = [m["loss"] for m in read_metrics(os.path.join(workdir, "metrics.jsonl")) if "loss" in m]
  assert losses[-1] < losses[0]


def test_resume_after_kill_gives_the_same_losses(tmp_path, root):
  steps = ["--config.train.steps=40", "--config.train.log_every=1",
           "--config.train.checkpoint_every=2", "--config.eval.enabled=False",
           "--config.optim.decay_steps=40"]
  straight = str(tmp_path / "straight")
  subprocess.run(sft_cmd(root, straight, *steps), env=env(), check=True, capture_output=True)

  killed = str(tmp_path / "killed")
  proc = subprocess.Popen(sft_cmd(root, killed, *steps), env=env(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  ck = os.path.join(killed, "checkpoints")
  deadline = time.time() + 300
  while time.time() < deadline:
    done = [d for d in (os.listdir(ck) if os.path.isdir(ck) else []) if d.isdigit()]
    if done and max(map(int, done)) >= 4:
      break
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  kept = max(int(d) for d in os.listdir(ck) if d.isdigit())
  assert 4 <= kept < 40, "the run was not interrupted part-way"
  subprocess.run(sft_cmd(root, killed, *steps), env=env(), check=True, capture_output=True)

  def by_step(w):
    return {m["step"]: m["loss"] for m in read_metrics(os.path.join(w, "metrics.jsonl"))
            if "loss" in m}  # a re-run step's later entry wins
  a, b = by_step(straight), by_step(killed)
  assert sorted(a) == sorted(b) == list(range(1, 41))
  assert [a[s] for s in a] == [b[s] for s in a]


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, tiny_config, monkeypatch):
  workdir = str(tmp_path / "w")
  c = tiny_config()
  c.train.steps = 4
  c.eval.enabled = False
  sft.run(c, workdir)

  real = sft.train_lib.next_token_loss
  def nan_loss(model, params, batch):
    s, w, m = real(model, params, batch)
    return s * jnp.nan, w, m
  monkeypatch.setattr(sft.train_lib, "next_token_loss", nan_loss)
  c.train.steps = 8
  with pytest.raises(FloatingPointError, match=r"non-finite loss .* step 4 .*checkpoint \(step 4\)"):
    sft.run(c, workdir)
  ck = checkpoints.Checkpointer(os.path.join(workdir, "checkpoints"))
  assert ck.latest_step() == 4
  ck.close()


def test_unknown_override_key_is_named(tmp_path, root):
  r = subprocess.run(sft_cmd(root, str(tmp_path), "--config.train.stepz=3"), env=env(),
                     capture_output=True, text=True)
  assert r.returncode != 0
  assert "unknown config key 'train.stepz'" in r.stderr
  assert "steps" in r.stderr  # lists what does exist


@pytest.mark.parametrize("key,value,match", [
    ("model.n_heads", 3, "n_heads"), ("train.grad_accum", 3, "grad_accum"),
    ("optim.lr", -1.0, "optim.lr"), ("data.seq_len", 0, "seq_len"),
    ("task.max_steps", 0, "min_steps"), ("data.seq_len", 64, "exceed seq_len=64"),
])
def test_malformed_config_values(tmp_path, tiny_config, key, value, match):
  c = tiny_config()
  section, name = key.split(".")
  c[section][name] = value
  with pytest.raises(ValueError, match=match):
    sft.run(c, str(tmp_path))


def test_checkpoint_of_the_wrong_shape(trained, tmp_path, tiny_config):
  import shutil
  workdir = str(tmp_path / "w")
  shutil.copytree(trained[0], workdir)
  c = tiny_config()
  c.model.d_model = 48
  c.model.n_heads = 4
  with pytest.raises(ValueError, match=r"embedding: checkpoint has shape \(\d+, 32\), model "
                                       r"expects \(\d+, 48\)"):
    sft.run(c, workdir)


def test_bad_data_files(tmp_path):
  empty = tmp_path / "empty.jsonl"
  empty.write_text("")
  with pytest.raises(ValueError, match="no records"):
    gsm8k.read_jsonl(str(empty))
  bad = tmp_path / "bad.jsonl"
  bad.write_text('{"question": "q", "answer": "a"}\n{"question": oops}\n')
  with pytest.raises(ValueError, match=r"bad.jsonl:2: not valid JSON"):
    gsm8k.read_jsonl(str(bad))
  miss = tmp_path / "miss.jsonl"
  miss.write_text('{"question": "q"}\n')
  with pytest.raises(ValueError, match=r"miss.jsonl:1: missing key\(s\) \['answer'\]"):
    gsm8k.read_jsonl(str(miss))
  with pytest.raises(FileNotFoundError, match="data file not found"):
    gsm8k.read_jsonl(str(tmp_path / "nope.jsonl"))


def test_evaluate_on_real_gsm8k_and_generated_files(trained, tmp_path, root):
  workdir, _ = trained
  sample = tmp_path / "gsm8k3.jsonl"
  with open(GSM8K_TEST) as f:
    sample.write_text("".join(f.readline() for _ in range(3)))
  out = tmp_path / "out.jsonl"
  script = os.path.join(root, "experiments", "evaluate.py")
  r = subprocess.run([sys.executable, script, f"--workdir={workdir}", f"--data={sample}",
                      f"--output={out}", "--max_new_tokens=24", "--batch_size=4"],
                     env=env(), capture_output=True, text=True)
  assert r.returncode == 0, r.stderr[-2000:]
  rows = [json.loads(l) for l in open(out)]
  assert len(rows) == 3 and all(r["checker"] == "annotation" for r in rows)
  assert all(isinstance(r["correct"], bool) and "steps" in r for r in rows)
  assert json.load(open(tmp_path / "out.summary.json"))["n"] == 3
  gen = os.path.join(workdir, "data", "test.jsonl")
  r = subprocess.run([sys.executable, script, f"--workdir={workdir}", f"--data={gen}",
                      f"--output={tmp_path / 'gen.jsonl'}", "--limit=5", "--max_new_tokens=24",
                      "--batch_size=5"], env=env(), capture_output=True, text=True)
  assert r.returncode == 0, r.stderr[-2000:]
  rows = [json.loads(l) for l in open(tmp_path / "gen.jsonl")]
  assert len(rows) == 5 and all(r["checker"] == "exact" for r in rows)
  empty = tmp_path / "empty.jsonl"
  empty.write_text("\n")
  r = subprocess.run([sys.executable, script, f"--workdir={workdir}", f"--data={empty}"],
                     env=env(), capture_output=True, text=True)
  assert r.returncode != 0 and "no records" in r.stderr


def test_sft_trains_on_the_planned_format(tmp_path, tiny_config):
  """data.format=plan: the policy's targets open with the plan line, which the workdir's
  tokenizer knows (it saw plan lines) and the checker judges like any step."""
  from s2jax import tasks
  from s2jax.tasks import arith
  c = tiny_config()
  c.data.format = "plan"
  c.train.steps = 2
  result = sft.run(c, str(tmp_path))
  assert result["final_step"] == 2
  tok = SentencePieceTokenizer(str(tmp_path / "tokenizer.model"))
  rec = gsm8k.read_jsonl(str(tmp_path / "data" / "train.jsonl"))[0]
  task = tasks.get("arith")
  target = sft.target_text(task, rec, "plan", tok)
  assert target.split("\n")[0] == arith.plan_line(task.from_json(rec))
  assert tok.decode(tok.encode(target.split("\n")[0])) == target.split("\n")[0]
  # The reference with its plan is fully valid; every output row was judged.
  assert task.check(task.from_json(rec), target).fully_valid
  assert result["eval"]["test"]["n"] == c.data.num_eval
