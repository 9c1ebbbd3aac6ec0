"""The main job: experiments/pipeline.py runs every stage, resumes, writes the report."""
import json
import os
import subprocess
import sys

import ml_collections
import pytest

from s2jax import pipeline, report
from s2jax.config import load_config_file
from tests.conftest import ROOT, script_env


def test_every_stage_ran_once_and_the_second_launch_skipped_the_first_two(tiny_pipeline):
  wd = tiny_pipeline["workdir"]
  for stage in pipeline.STAGES:
    assert os.path.exists(os.path.join(wd, stage, "DONE")) or os.path.exists(
        os.path.join(wd, stage, "eval", "summary.json")), stage
  first, second = tiny_pipeline["logs"]
  assert "== pipeline stage sft" in first and "== pipeline stage verifier" in first
  assert "== pipeline stage distill" not in first
  assert "== pipeline stage sft" not in second and "== pipeline stage verifier" not in second
  assert "sft finished before" in second
  for stage in ("distill", "ppo", "search"):
    assert f"== pipeline stage {stage}" in second
  everything = report.read_launches(wd)
  assert [r["what"] for r in everything].count("pipeline.py") == 2
  launches = [r for r in everything if r["what"] != "pipeline.py"]
  # One ok launch per stage; sft and verifier ran in the first pipeline launch only.
  assert sorted(r["what"] for r in launches) == sorted(pipeline.STAGES)
  assert all(r["status"] == "ok" and r["seconds"] > 0 for r in launches)
  first = {r["what"]: r["command"] for r in launches}
  assert "--config.stages" in first["sft"] and "--config.stages" not in first["ppo"]
  m = json.load(open(os.path.join(wd, "metrics.json")))
  assert m["seconds"]["sft"] == pytest.approx(
      sum(r["seconds"] for r in launches if r["what"] == "sft"))


def test_metrics_cover_every_stage(tiny_pipeline):
  m = json.load(open(os.path.join(tiny_pipeline["workdir"], "metrics.json")))
  assert list(m["accuracy"])[:3] == ["SFT", "self-distilled", "PPO"]
  assert any("best-of" in k for k in m["accuracy"])
  splits = {"test", "shift_steps"}
  for row in m["accuracy"].values():
    assert set(row) == splits and all(0 <= v <= 1 for v in row.values())
  assert set(m["verifier"]) == splits
  # The verifier's own evaluation, interval included, is what the report shows.
  summary = json.load(open(os.path.join(tiny_pipeline["workdir"], "verifier", "eval",
                                        "summary.json")))
  for split in splits:
    for key in ("auroc", "auroc_ci", "valid_steps", "invalid_steps", "within_problem_auroc",
                "within_problem_auroc_distinct", "problem_mean_auroc", "process_bench"):
      # (as JSON: an AUROC with one class missing is NaN on both sides)
      assert json.dumps(m["verifier"][split][key]) == json.dumps(summary[split][key]), (
          split, key)
  assert m["compute"]["sft"] > 0 and m["compute"]["verifier"] > 0 and m["compute"]["ppo"] > 0
  assert len(m["ppo_curve"]) == load_config_file(
      os.path.join(ROOT, "configs", "pipeline.py:tiny")).ppo.train.iterations


def test_report_is_written_and_regenerates_from_the_saved_metrics(tiny_pipeline, tmp_path):
  out = tiny_pipeline["out"]  # the run gave no --out: <workdir>/report
  report = open(os.path.join(out, "REPORT.md")).read()
  for needle in ("| SFT |", "| self-distilled |", "| PPO |", "accuracy.png", "training.png",
                 "## Verifier", "## Search", "within-problem AUROC (pairs)"):
    assert needle in report, needle
  assert os.path.getsize(os.path.join(out, "accuracy.png")) > 1000
  again = str(tmp_path / "again")
  p = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "pipeline.py"),
                      f"--report_from={os.path.join(out, 'metrics.json')}", f"--out={again}"],
                     env=script_env(), capture_output=True, text=True, cwd=ROOT)
  assert p.returncode == 0, p.stderr[-2000:]
  assert open(os.path.join(again, "REPORT.md")).read() == report
  # Without --out, --report_from rewrites the report beside the JSON it reads.
  os.remove(os.path.join(again, "REPORT.md"))
  p = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "pipeline.py"),
                      f"--report_from={os.path.join(again, 'metrics.json')}"],
                     env=script_env(), capture_output=True, text=True, cwd=str(tmp_path))
  assert p.returncode == 0, p.stderr[-2000:]
  assert open(os.path.join(again, "REPORT.md")).read() == report


def _config(**overrides):
  c = load_config_file(os.path.join(ROOT, "configs", "pipeline.py:tiny"))
  for k, v in overrides.items():
    c[k] = v
  return c


@pytest.mark.parametrize("stages,policies,needle", [
    (("sft", "magic"), ("sft",), "unknown stage(s) ['magic']"),
    (("sft", "distill"), ("sft",), "stage 'distill' needs ['verifier']"),
    (("verifier",), ("sft",), "stage 'verifier' needs ['sft']"),
    (("sft", "verifier", "search"), ("ppo",), "search needs one of"),
])
def test_bad_stage_lists_are_named(stages, policies, needle, tmp_path):
  with pytest.raises(ValueError) as e:
    pipeline.run(_config(stages=stages, search_policy=policies), str(tmp_path))
  assert needle in str(e.value)
  assert not os.listdir(tmp_path)  # nothing ran


def test_stage_configs_get_the_seed_and_the_paths(tmp_path):
  c = _config(seed=3)
  wd = str(tmp_path)
  assert pipeline.stage_config(c, "sft", wd).seed == 3
  v = pipeline.stage_config(c, "verifier", wd)
  assert v.seed == 3 and v.policy_workdir == os.path.join(wd, "sft")
  s = pipeline.stage_config(c, "search", wd)
  assert s.policy_workdir == os.path.join(wd, "ppo") and s.prm_workdir == os.path.join(wd, "verifier")
  c.stages = ("sft", "verifier", "distill", "search")
  s = pipeline.stage_config(c, "search", wd)
  assert s.policy_workdir == os.path.join(wd, "distill", f"round_{c.distill.rounds}")
  assert isinstance(s, ml_collections.ConfigDict)


def test_unknown_override_key_is_named():
  p = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "pipeline.py"),
                      f"--config={os.path.join(ROOT, 'configs', 'pipeline.py')}",
                      "--workdir=/nonexistent", "--config.ppo.rl.gama=0.9"],
                     env=script_env(), capture_output=True, text=True, cwd=ROOT)
  assert p.returncode != 0
  assert "unknown config key 'ppo.rl.gama'" in p.stderr and "gamma" in p.stderr
