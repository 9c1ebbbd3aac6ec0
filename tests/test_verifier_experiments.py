"""End-to-end on tiny configs: verifier training from policy samples (each label source
path), then verifier-guided search, reading the policy workdir SFT left behind."""
import glob
import json
import os

import numpy as np
import pytest

from s2jax.stages import search as search_stage
from s2jax.stages import verifier as verifier_stage
from s2jax.config import load_config_file
from s2jax.data import stepwise
from s2jax.metrics import read_metrics
from tests.test_experiments import trained  # noqa: F401  (fixture)


def verifier_config(root, policy_workdir, variant="tiny", **labels):
  c = load_config_file(os.path.join(root, "configs", f"verifier_arith.py:{variant}"))
  c.policy_workdir = policy_workdir
  c.labels.update(labels)
  return c


@pytest.fixture(scope="module")
def verifiers(trained, root, tmp_path_factory):  # noqa: F811
  policy, _ = trained
  out = {}
  # Packed PRM batches end to end (test_gsm8k_pipeline trains a PRM on padded ones).
  c = verifier_config(root, policy, "tiny,pack", source="mc", mc_k=2, mc_mode="soft")
  out["prm"] = str(tmp_path_factory.mktemp("prm"))
  out["prm_summary"] = verifier_stage.run(c, out["prm"])
  c = verifier_config(root, policy)
  c.kind = "orm"
  out["orm"] = str(tmp_path_factory.mktemp("orm"))
  out["orm_summary"] = verifier_stage.run(c, out["orm"])
  return policy, out


def test_prm_trains_on_mc_labels_and_reports_step_metrics(verifiers):
  policy, v = verifiers
  recs = stepwise.read_stepwise(os.path.join(v["prm"], "labels.jsonl"))
  assert recs and all(len(r["labels"]) == len(r["completions"]) for r in recs)
  # Soft MC labels from 2 rollouts are multiples of 1/2; corrupted steps are hard False.
  assert {float(x) for r in recs for x in r["labels"]} <= {0.0, 0.5, 1.0}
  s = v["prm_summary"]
  assert set(s) == {"test", "shift_steps", "data"}
  for key in ("auroc", "error_precision", "error_recall", "first_error_accuracy",
              "reliability", "solution_auroc"):
    assert key in s["test"]
  assert 0 <= s["data"]["label_agreement"]["agreement"] <= 1
  assert glob.glob(os.path.join(policy, "samples", "mc_*.jsonl"))
  assert os.path.exists(os.path.join(v["prm"], "eval", "reliability.png"))
  # The per-step held-out scores behind the summary, kept for paired comparisons.
  for split in ("test", "shift_steps"):
    steps = json.load(open(os.path.join(v["prm"], "eval", f"steps_{split}.json")))
    flat = [y for ys in steps["labels"] for y in ys]
    assert (sum(flat), len(flat) - sum(flat)) == (s[split]["valid_steps"],
                                                  s[split]["invalid_steps"])
    assert [len(x) for x in steps["scores"]] == [len(y) for y in steps["labels"]]
  metrics = read_metrics(os.path.join(v["prm"], "metrics.jsonl"))
  assert any(m.get("event") == "init_from_policy" and m["copied"] > 0 for m in metrics)
  assert any("loss" in m for m in metrics)


def test_orm_reuses_the_cached_samples(verifiers):
  policy, v = verifiers
  # PRM and ORM drew from the same cache: one train file and one per eval split.
  assert len(glob.glob(os.path.join(policy, "samples", "samples_train_*.jsonl"))) == 1
  assert "solution_auroc" in v["orm_summary"]["test"]
  assert json.load(open(os.path.join(v["orm"], "config.json")))["model"]["scalar_head"]


def test_search_compares_every_method(verifiers, root, tmp_path):
  policy, v = verifiers
  c = load_config_file(os.path.join(root, "configs", "search_arith.py:tiny"))
  c.update(policy_workdir=policy, prm_workdir=v["prm"], orm_workdir=v["orm"])
  c.splits = ("test",)
  result = search_stage.run(c, str(tmp_path / "search"))
  r = result["splits"]["test"]
  assert set(r["methods"]) == {"majority vote", "best-of-N ORM", "best-of-N PRM-min",
                               "best-of-N PRM-prod", "best-of-N PRM-last",
                               "best-of-N PRM-mean", "weighted vote PRM-min",
                               "PRM beam search"}
  assert [x["n"] for x in r["methods"]["majority vote"]] == list(c.ns)
  toks = [x["tokens"] for x in r["methods"]["majority vote"]]
  assert toks == sorted(toks) and toks[0] > 0
  assert r["methods"]["PRM beam search"][0]["tokens"] > 0
  search_stage.write_report(result, str(tmp_path / "out" / "search"))
  for ext in (".md", ".json", ".png"):
    assert os.path.exists(str(tmp_path / "out" / "search") + ext)


@pytest.mark.parametrize("key,value,match", [
    ("kind", "value_model", "kind"), ("labels.source", "humans", "labels.source"),
    ("labels.mc_k", 9, "labels.mc_k"), ("policy_workdir", "", "policy_workdir")])
def test_bad_verifier_configs_are_named(root, tmp_path, key, value, match):
  c = verifier_config(root, "/nonexistent")
  node, leaf = (c, key) if "." not in key else (c[key.split(".")[0]], key.split(".")[1])
  node[leaf] = value
  with pytest.raises(ValueError, match=match):
    verifier_stage.run(c, str(tmp_path))


def test_sweep_launches_one_job_per_point(root, tmp_path):
  import subprocess
  import sys
  out = subprocess.run(
      [sys.executable, os.path.join(root, "experiments", "sweep.py"),
       f"--config={os.path.join(root, 'configs', 'verifier_arith.py')}",
       "--sweep=label_sources", "--script=experiments/train_verifier.py",
       f"--workdir_root={tmp_path}", "--dry_run", "--", "--config.policy_workdir=P"],
      capture_output=True, text=True, check=True).stdout.strip().splitlines()
  assert len(out) == 6
  assert all("--config.labels.max_solutions=400" in c and c.endswith("--config.policy_workdir=P")
             for c in out)
  assert any("--config.labels.mc_k=2" in c and f"--workdir={tmp_path}/mc_k2_hard" in c
             for c in out)


def test_self_distillation_rounds_with_prm_filter(verifiers, root, tmp_path):
  from s2jax.stages import distill as distill_stage
  from s2jax.policy import Policy
  policy, v = verifiers
  c = load_config_file(os.path.join(root, "configs", "distill_arith.py:tiny"))
  c.update(policy_workdir=policy, prm_workdir=v["prm"])
  log = distill_stage.run(c, str(tmp_path / "d"))
  assert [r["round"] for r in log["rounds"]] == [0, 1, 2]
  s = c.samples
  for r in log["rounds"][1:]:
    # top-1 per problem: exactly one kept sample for every problem
    assert r["selection"]["kept"] == s.problems
    assert r["selection"]["problems_with_kept"] == s.problems
    assert set(r["eval"]) == {"test", "shift_steps"}
    assert Policy(r["policy"]).step == c.train.steps  # each round is a loadable policy
  # round 2 sampled from round 1's policy, not from the SFT one
  assert glob.glob(os.path.join(log["rounds"][1]["policy"], "samples", "samples_train_*"))
  assert os.path.exists(str(tmp_path / "d" / "DONE"))
  again = distill_stage.run(c, str(tmp_path / "d"))  # finished rounds are not redone
  assert again["rounds"] == json.load(open(tmp_path / "d" / "rounds.json"))["rounds"]
  from s2jax.reports import rl as report_rl
  data = report_rl.write_report([report_rl.load_distill(str(tmp_path / "d"))], [],
                                str(tmp_path / "out" / "rl"), "cmd")
  assert [s["stage"] for s in data["stages"]] == ["SFT", "distill d round 1", "distill d round 2"]
  assert "| d | 2 |" in open(tmp_path / "out" / "rl.md").read()


def test_random_filter_needs_a_verifier_to_match_a_prm_filter(root, tmp_path):
  from s2jax.stages import distill as distill_stage
  c = load_config_file(os.path.join(root, "configs", "distill_arith.py:tiny"))
  c.update(policy_workdir="/nonexistent")
  c.filter.kind = "random"
  with pytest.raises(ValueError, match="prm_workdir"):
    distill_stage.run(c, str(tmp_path))


def ppo_config(root, policy, prm, **rl):
  c = load_config_file(os.path.join(root, "configs", "ppo_arith.py:tiny"))
  c.update(policy_workdir=policy, prm_workdir=prm)
  c.rl.update(rl)
  return c


def test_ppo_with_step_rewards_and_recovery_resumes(verifiers, root, tmp_path):
  from s2jax.stages import rl as rl_stage
  from s2jax.policy import Policy
  policy, v = verifiers
  c = ppo_config(root, policy, v["prm"])
  c.recovery.source = "sampled"
  out = rl_stage.run(c, str(tmp_path / "ppo"))
  assert [m["step"] for m in out["metrics"]] == [1, 2]
  for m in out["metrics"]:
    for key in ("time_rollout", "time_scoring", "time_update", "rollout_tokens_per_s",
                "verifier_reward", "kl", "value_loss", "clip_fraction", "hacking_alarm",
                "recovery_accuracy"):
      assert key in m, key
  assert [e["step"] for e in out["evals"]] == [0, 2]
  assert all("recovery_rate" in e and "test" in e["accuracy"] for e in out["evals"])
  assert Policy(str(tmp_path / "ppo")).step == 2  # the RL workdir is a policy workdir
  c.train.iterations = 3  # resume: one more iteration, no repeated evaluation
  out = rl_stage.run(c, str(tmp_path / "ppo"))
  assert [m["step"] for m in out["metrics"]] == [1, 2, 3]
  assert [e["step"] for e in out["evals"]] == [0, 2, 3]
  from s2jax.reports import rl as report_rl
  data = report_rl.write_report([], [report_rl.load_rl(str(tmp_path / "ppo"))],
                                str(tmp_path / "out" / "rl"), "cmd")
  assert data["stages"][-1]["stage"] == "RL ppo (iteration 3)"
  for ext in (".md", ".json", ".png"):
    assert os.path.exists(str(tmp_path / "out" / "rl") + ext)


@pytest.mark.parametrize("algorithm,shared,pack", [("grpo", True, True), ("ppo", False, False)])
def test_critic_free_and_separate_value_variants_run(verifiers, root, tmp_path, algorithm,
                                                     shared, pack):
  from s2jax.stages import rl as rl_stage
  policy, v = verifiers
  c = ppo_config(root, policy, v["prm"], algorithm=algorithm,
                 group_size=2 if algorithm == "grpo" else 1, pack=pack)
  c.value.shared_trunk = shared
  c.rewards.step_weight = 0.0
  c.train.iterations = 1
  c.eval.every = 0
  out = rl_stage.run(c, str(tmp_path / algorithm))
  m = out["metrics"][0]
  assert ("value_loss" in m) == (algorithm == "ppo")
  # The update is charged for the rows it ran: packed ones only when they were fewer.
  models = 1 if shared else 2
  assert m["update_positions"] == m["update_rows"] * m["update_width"] * models * c.rl.epochs
  assert m["update_rows"] <= c.rollout.prompts * c.rl.group_size
  assert "prm_mean" in m  # monitored even without weight (None when no steps were written)


@pytest.mark.parametrize("key,value,match", [
    ("rewards.outcome", "vibes", "rewards.outcome"), ("rl.algorithm", "dpo", "algorithm"),
    ("rewards.step_weight", 1.0, "prm_workdir"), ("recovery.fraction", 2.0, "recovery")])
def test_bad_ppo_configs_are_named(root, tmp_path, key, value, match):
  from s2jax.stages import rl as rl_stage
  c = ppo_config(root, "/nonexistent", "")
  c.rewards.step_weight = 0.0  # valid without a PRM, so only the named key is wrong
  section, leaf = key.split(".")
  c[section][leaf] = value
  with pytest.raises(ValueError, match=match):
    rl_stage.run(c, str(tmp_path))


def _fake_prm(path, scores, labels, source):
  """A finished PRM workdir as report_verifier reads it, with known held-out scores."""
  from s2jax import verifier_metrics as vm
  os.makedirs(os.path.join(path, "eval"))
  labels_cfg = {"source": source, "mc_k": 4, "mc_mode": "hard", "max_solutions": 400,
                "corrupted_per_problem": 0}
  json.dump({"kind": "prm", "labels": labels_cfg}, open(os.path.join(path, "config.json"), "w"))
  json.dump({"command": "x", "commit": "abc"}, open(os.path.join(path, "run_info.json"), "w"))
  report = vm.step_report(scores, labels)
  report.update(solution_auroc=0.5, solutions=len(scores))
  json.dump({"test": report, "data": {}}, open(os.path.join(path, "eval", "summary.json"), "w"))
  json.dump({"scores": scores, "labels": labels},
            open(os.path.join(path, "eval", "steps_test.json"), "w"))


def test_report_verifier_pairs_prms_on_the_same_steps(root, tmp_path):
  import subprocess
  import sys
  import numpy as np
  from s2jax import verifier_metrics as vm
  from tests.conftest import script_env
  rng = np.random.default_rng(0)
  labels = [[bool(x) for x in rng.random(3) < 0.7] for _ in range(200)]
  weak = [[float(rng.normal(y, 1.5)) for y in ys] for ys in labels]
  strong = [[float(rng.normal(3 * y, 1.0)) for y in ys] for ys in labels]
  _fake_prm(str(tmp_path / "exact"), weak, labels, "exact")
  _fake_prm(str(tmp_path / "mc"), strong, labels, "mc")
  out = str(tmp_path / "report")
  p = subprocess.run([sys.executable, os.path.join(root, "experiments", "report_verifier.py"),
                      f"--out={out}", f"--paired_against={tmp_path / 'exact'}",
                      str(tmp_path / "exact"), str(tmp_path / "mc")],
                     env=script_env(), capture_output=True, text=True, cwd=root)
  assert p.returncode == 0, p.stderr[-2000:]
  flat = np.concatenate(labels)
  want = vm.auroc(np.concatenate(strong), flat) - vm.auroc(np.concatenate(weak), flat)
  runs = json.load(open(out + ".json"))
  d = next(r for r in runs if r["name"].startswith("PRM mc"))["paired"]["test"]
  assert d["difference"] == pytest.approx(want) and d["ci"][0] > 0
  assert f"{want:+.3f}" in open(out + ".md").read() and "| higher |" in open(out + ".md").read()
  # Held-out steps that differ cannot be paired.
  _fake_prm(str(tmp_path / "other"), strong, [[not y for y in ys] for ys in labels], "mc")
  p = subprocess.run([sys.executable, os.path.join(root, "experiments", "report_verifier.py"),
                      f"--out={out}", f"--paired_against={tmp_path / 'exact'}",
                      str(tmp_path / "exact"), str(tmp_path / "other")],
                     env=script_env(), capture_output=True, text=True, cwd=root)
  assert p.returncode != 0 and "same held-out solutions" in p.stderr


def test_held_out_samples_are_saved_with_what_the_ranking_metrics_need(verifiers):
  """Each verifier's held-out file has every sample's problem, text, outcome and score;
  the summary's within-problem and problem-mean AUROCs come back from it alone, and a PRM's
  solution score is its lowest step score."""
  from s2jax import verifier_metrics as vm
  _, v = verifiers
  for kind in ("prm", "orm"):
    summary = v[f"{kind}_summary"]["test"]
    saved = json.load(open(os.path.join(v[kind], "eval", "steps_test.json")))
    n = summary["solutions"]
    assert len(saved["problem"]) == len(saved["text"]) == len(saved["correct"]) == n
    assert np.mean(saved["correct"]) == pytest.approx(summary["answer_correct_fraction"])
    sc, corr, prob = saved["solution_scores"], saved["correct"], saved["problem"]
    for key, texts in (("within_problem_auroc", None),
                       ("within_problem_auroc_distinct", saved["text"])):
      again = vm.within_problem_auroc(sc, corr, prob, texts)
      assert again["pairs"] == summary[key]["pairs"]
      assert again["auroc"] == pytest.approx(summary[key]["auroc"], nan_ok=True)
    assert vm.problem_mean_auroc(sc, corr, prob) == pytest.approx(
        summary["problem_mean_auroc"], nan_ok=True)
    if kind == "prm":
      assert sc == pytest.approx([min(x) if x else 0.0 for x in saved["scores"]])
      assert summary["process_bench"]["erroneous_chains"] == sum(
          not all(ls) for ls in saved["labels"])


def test_a_prm_with_the_ranking_loss_pairs_each_problems_samples(verifiers, root, tmp_path):
  """ranking_weight > 0: the labels carry each sample's problem and outcome (the checker's
  verdict on its answer), corrupted references are planted, and training logs
  the pairs it ranked; data.pack is refused with it."""
  policy, _ = verifiers
  c = verifier_config(root, policy)
  c.ranking_weight = 1.0
  c.labels.update(corruption_kinds=("distractor", "parent"), balance=False)
  c.samples.update(per_problem=4)
  c.train.update(batch_size=8)
  verifier_stage.run(c, str(tmp_path / "prm"))
  recs = [json.loads(line) for line in open(tmp_path / "prm" / "labels.jsonl")]
  samples = [r for r in recs if "group" in r]
  assert samples and len({r["group"] for r in samples}) == c.samples.train_problems
  for r in samples:
    assert r["outcome"] in (0.0, 1.0)
  planted = [r for r in recs if "group" not in r]
  assert planted and all(r["labels"][-1] is False for r in planted)
  # Logged every step; a pair needs a right and a wrong sample of one problem, which the
  # tiny policy may not have (then no step ranks a pair).
  logged = [m["ranking_pairs"] for m in read_metrics(str(tmp_path / "prm" / "metrics.jsonl"))
            if "ranking_pairs" in m]
  mixed = any({r["outcome"] for r in samples if r["group"] == g} == {0.0, 1.0}
              for g in {r["group"] for r in samples})
  assert logged and (max(logged) > 0) == mixed
  c.data.pack = True
  with pytest.raises(ValueError, match="data.pack=False"):
    verifier_stage.run(c, str(tmp_path / "packed"))


def test_rloo_with_dynamic_sampling_draws_until_the_groups_are_mixed(verifiers, root, tmp_path):
  """rollout.max_draws > 1 with a group-relative estimator: each iteration logs its draws,
  the fraction of mixed groups among all drawn, and charges every drawn token; a draw's
  groups are recounted here from the logged fraction and the batch size."""
  from s2jax.stages import rl as rl_stage
  policy, v = verifiers
  c = ppo_config(root, policy, "", algorithm="rloo", group_size=2, minibatches=1)
  c.rewards.step_weight = 0.0
  c.recovery.fraction = 0.0
  c.rollout.max_draws = 3
  out = rl_stage.run(c, str(tmp_path / "rloo"))
  for m in out["metrics"]:
    assert 1 <= m["draws"] <= 3
    drawn_groups = m["draws"] * c.rollout.prompts
    mixed = round(m["mixed_group_fraction"] * drawn_groups)
    # it stops drawing once the batch is full of mixed groups
    assert (mixed >= c.rollout.prompts) or m["draws"] == 3
    assert m["mixed_groups_in_batch"] == min(mixed, c.rollout.prompts) / c.rollout.prompts
    assert m["generated_tokens"] >= m["response_tokens"] * c.rollout.prompts * 2 - 1e-6
