"""The launch log: every launch of a job is recorded with its status and wall time."""
import json
import os
import time

import numpy as np
import pytest

from s2jax import report


def test_ok_failed_and_interrupted_launches_are_all_recorded(tmp_path):
  wd = str(tmp_path)
  with report.launch(wd, "sft"):
    time.sleep(0.05)
  with pytest.raises(ValueError):
    with report.launch(wd, "verifier"):
      raise ValueError("bad record #3")
  with pytest.raises(KeyboardInterrupt):
    with report.launch(wd, "verifier"):
      raise KeyboardInterrupt
  got = report.read_launches(wd)
  assert [(r["what"], r["status"]) for r in got] == [
      ("sft", "ok"), ("verifier", "failed"), ("verifier", "interrupted")]
  assert got[0]["seconds"] >= 0.05 and got[1]["error"] == "ValueError: bad record #3"
  assert all(r["commit"] and r["command"].startswith("python") for r in got)


def test_a_killed_launch_is_charged_until_the_next_launch_or_the_last_write(tmp_path):
  wd = str(tmp_path)

  def started(i, t):
    return {"id": str(i), "what": "sft", "status": "started", "command": "python x",
            "commit": "c", "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))}
  t0 = 1_700_000_000
  with open(os.path.join(wd, report.LAUNCHES), "w") as f:
    f.write(json.dumps(started(1, t0)) + "\n")           # killed; the next starts at +100 s
    f.write(json.dumps(started(2, t0 + 100)) + "\n")     # killed; last write at +130 s
  other = os.path.join(wd, "metrics.jsonl")
  open(other, "w").close()
  os.utime(other, (t0 + 130, t0 + 130))
  os.utime(os.path.join(wd, report.LAUNCHES), (t0 + 101, t0 + 101))
  got = report.read_launches(wd)
  assert [r["status"] for r in got] == ["killed", "killed"]
  assert [r["seconds"] for r in got] == [100, 30]


def test_a_killed_launch_is_charged_until_its_last_heartbeat(tmp_path, monkeypatch):
  wd = str(tmp_path)
  monkeypatch.setattr(report, "HEARTBEAT_S", 0.02)
  with report.launch(wd, "sft"):
    [rid] = os.listdir(os.path.join(wd, report.HEARTBEATS))
    beat = os.path.join(wd, report.HEARTBEATS, rid)
    first = float(open(beat).read())
    time.sleep(0.2)
    assert float(open(beat).read()) > first  # rewritten while the launch runs
  assert not os.path.exists(beat)  # an ended launch has its end line instead
  # Killed outright: a started line, a heartbeat 42 s in, and files written much later
  # (another launch's, or a copy's) do not stretch it.
  t0 = 1_700_000_000
  with open(os.path.join(wd, report.LAUNCHES), "a") as f:
    f.write(json.dumps({"id": "k", "what": "verifier", "status": "started", "command": "c",
                        "commit": "c", "started": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                time.gmtime(t0))}) + "\n")
  with open(os.path.join(wd, report.HEARTBEATS, "k"), "w") as f:
    f.write(f"{t0 + 42}\n")
  late = os.path.join(wd, "metrics.jsonl")
  open(late, "w").close()
  os.utime(late, (t0 + 5000, t0 + 5000))
  got = {r["id"]: r for r in report.read_launches(wd)}
  assert got["k"]["status"] == "killed" and got["k"]["seconds"] == 42
  assert "heartbeat" in got["k"]["error"]
  assert got[rid]["status"] == "ok"


def _metrics(minutes, acc, valid, auroc, n_valid, n_invalid):
  return {"launches": [{"what": "pipeline.py", "seconds": 60 * minutes}],
          "seconds": {}, "accuracy": {"SFT": {"test": acc}},
          "fully_valid": {"SFT": {"test": valid}},
          "verifier": {"test": {"auroc": auroc, "auroc_ci": [auroc - 0.02, auroc + 0.02],
                                "valid_steps": n_valid, "invalid_steps": n_invalid}}}


def test_the_testbed_targets_are_checked_at_their_thresholds():
  from s2jax.reports import seeds
  got = seeds.check(_metrics(30.0, 0.60, 0.50, 0.90, 200, 200))
  assert all(got["met"].values())
  assert got["value"]["prm_auroc_ci"] == pytest.approx([0.88, 0.92])  # shown beside it
  got = seeds.check(_metrics(30.1, 0.59, 0.49, 0.95, 500, 199))
  assert not any(got["met"].values())  # too few invalid steps: no AUROC counts
  assert got["value"]["minutes"] == pytest.approx(30.1)


def test_the_seeds_report_names_the_commits_behind_it(tmp_path):
  from s2jax.reports import seeds
  runs = {}
  for k, commits in enumerate([["aaaa1111bbbb2222"], ["cccc3333dddd4444-dirty", "eeee"]]):
    runs[f"seed{k}"] = dict(_metrics(30.0, 0.6, 0.5, 0.9, 200, 200), commits=commits,
                            config={"sft": {"data": {"num_eval": 100}}}, per_problem={})
  out = str(tmp_path / "REPORT")
  seeds.write(runs, out, "python x")
  md, js = open(out + ".md").read(), json.load(open(out + ".json"))
  assert ("- the seeds' launches ran at: seed0 `aaaa1111bbbb`; seed1 `cccc3333dddd` dirty, "
          "`eeee`") in md
  assert js["run_commits"]["seed1"] == ["cccc3333dddd4444-dirty", "eeee"]
  assert f"- written at git commit `{js['run_info']['commit']}`" in md


def test_a_commit_is_dirty_when_code_changed_not_when_results_did(tmp_path):
  import subprocess
  def git(*a):
    subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)
  git("init", "-q")
  (tmp_path / "results").mkdir()
  (tmp_path / "results" / "r.md").write_text("a")
  (tmp_path / "code.py").write_text("x = 1")
  git("add", ".")
  git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
  head = report.git_commit(str(tmp_path))
  assert len(head) == 40
  (tmp_path / "results" / "r.md").write_text("b")  # a report rewritten
  (tmp_path / "new.py").write_text("")  # untracked
  assert report.git_commit(str(tmp_path)) == head
  (tmp_path / "code.py").write_text("x = 2")
  assert report.git_commit(str(tmp_path)) == head + "-dirty"
  sub = tmp_path / "results"  # asked from a subdirectory: the same answer
  assert report.git_commit(str(sub)) == head + "-dirty"


def test_a_process_keeps_the_commit_it_started_from(monkeypatch):
  first = report.run_info()["commit"]
  monkeypatch.setattr(report, "git_commit", lambda path=".": "changed-meanwhile")
  assert report.run_info()["commit"] == first


def test_the_pipeline_report_pairs_each_policy_with_sft():
  from s2jax import pipeline, stats
  sft = [1] * 30 + [0] * 70
  ppo = [1] * 30 + [1] * 25 + [0] * 45  # 25 problems only PPO solves
  distilled = sft[:-3] + [1, 1, 1]
  metrics = {"per_problem": {
      "SFT": {"test": {"correct": sft}, "shift": {"correct": sft[:50]}},
      "PPO": {"test": {"correct": ppo}, "shift": {"correct": ppo[:40]}},  # other problems
      "self-distilled": {"test": {"correct": distilled}}}}
  lines = "\n".join(pipeline.paired_against_sft(metrics))
  want = stats.compare(sft, ppo)
  assert (f"| PPO | test | 100 | 0.300 → 0.550 | +0.250 [{want['ci'][0]:+.3f}, "
          f"{want['ci'][1]:+.3f}] | {want['mcnemar_p']:.3g} | helps |") in lines
  assert "| PPO | shift |" not in lines  # not the same problems: no pairing
  assert f"no effect detected at ±{stats.compare(sft, distilled)['mde']:.3f}" in lines
  assert pipeline.paired_against_sft({"per_problem": {"SFT": {}}}) == []


def test_the_seeds_report_pools_each_stage_against_sft_over_seeds():
  from s2jax.reports import seeds
  rng = np.random.default_rng(0)
  runs, want = {}, []
  for k in range(3):
    sft = rng.random(200) < 0.5
    ppo = sft | (rng.random(200) < 0.3)  # PPO solves everything SFT does, and more
    runs[f"seed{k}"] = {"per_problem": {"SFT": {"test": {"correct": sft.tolist()}},
                                        "PPO": {"test": {"correct": ppo.tolist()}}}}
    want.append((ppo.astype(int) - sft.astype(int)).sum())
  runs["seed2"]["per_problem"]["PPO"]["test"]["correct"] = ppo[:150].tolist()  # unpaired
  lines, data = seeds.pooled_against_sft(runs)
  got = data["PPO"]["test"]
  assert got["n"] == 400 and got["seeds"] == 2
  assert got["difference"] == pytest.approx((want[0] + want[1]) / 400)
  assert got["ci"][0] > 0 and got["verdict"] == "helps"
  assert "| PPO | test | 400 (2 of 3 seeds) |" in "\n".join(lines)
  same = {k: {"per_problem": {"SFT": r["per_problem"]["SFT"], "PPO": r["per_problem"]["SFT"]}}
          for k, r in runs.items()}
  assert seeds.pooled_against_sft(same)[1]["PPO"]["test"]["verdict"].startswith(
      "no effect detected")


def test_a_relaunch_with_another_config_keeps_the_earlier_one(tmp_path):
  import ml_collections
  from s2jax import pipeline
  c = ml_collections.ConfigDict({"seed": 0, "verifier": {"seq_len": 320}})
  pipeline.write_config(str(tmp_path), c)
  pipeline.write_config(str(tmp_path), c)  # the same config again: nothing kept
  assert not (tmp_path / pipeline.CONFIG_HISTORY).exists()
  c.verifier.seq_len = 384
  pipeline.write_config(str(tmp_path), c)
  (line,) = (tmp_path / pipeline.CONFIG_HISTORY).read_text().splitlines()
  assert json.loads(line)["config"]["verifier"]["seq_len"] == 320
  assert json.load(open(tmp_path / "config.json"))["verifier"]["seq_len"] == 384
