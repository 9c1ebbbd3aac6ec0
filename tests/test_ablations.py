"""The ablation suite: its pieces (training formats, matched-size filters, task grids,
compute accounting, seed statistics, one job per point) and the scripts end to end on the
tiny pipeline."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from s2jax.ablations import common as ablation
from s2jax import compute, distill
from s2jax.data import formats, gsm8k
from s2jax import tasks
from tests.conftest import ROOT, script_env

ABLATIONS = ("rl_vs_sft", "distill_filters", "domain_shift", "filler_tokens",
             "verifier_budget", "working_memory")


def _script(name, root, *extra):
  return subprocess.run(
      [sys.executable, os.path.join(ROOT, "experiments", "ablation.py"),
       f"--config={os.path.join(ROOT, 'configs', 'ablations', name + '.py')}:tiny",
       f"--workdir={root}", f"--out={os.path.join(root, 'results', name)}", *extra],
      env=script_env(), capture_output=True, text=True, cwd=ROOT)


# ------------------------------------------------------------------------ formats

@pytest.fixture(scope="module")
def tok_and_records(tiny_pipeline):
  from s2jax.tokenizers import SentencePieceTokenizer
  sft = os.path.join(tiny_pipeline["workdir"], "sft")
  return (SentencePieceTokenizer(os.path.join(sft, "tokenizer.model")),
          gsm8k.read_jsonl(os.path.join(sft, "data", "train.jsonl"))[:200])


def test_filler_has_the_chain_of_thoughts_token_count(tok_and_records):
  tok, recs = tok_and_records
  for r in recs:
    cot = formats.solution_text(r["answer"], "cot", tok)
    filler = formats.solution_text(r["answer"], "filler", tok)
    direct = formats.solution_text(r["answer"], "direct", tok)
    assert cot == r["answer"]
    assert len(tok.encode(filler)) == len(tok.encode(cot))
    assert set(filler.split("\n")[0]) == {formats.FILLER}
    final = r["answer"].split("\n")[-1]
    assert filler.split("\n")[-1] == final and direct == final
    # Graded the same way: the answer line is all the grader reads.
    task = tasks.get("arith")
    p = task.from_json(r)
    assert task.check(p, filler).answer_correct and task.check(p, direct).answer_correct


def test_format_errors_are_named():
  with pytest.raises(ValueError, match="data.format='dots' must be one of"):
    formats.solution_text("a\n#### 1", "dots")
  with pytest.raises(ValueError, match="no '#### answer' final line"):
    formats.solution_text("Ben has 3 apples.", "direct")
  with pytest.raises(ValueError, match="needs the tokenizer"):
    formats.solution_text("a\n#### 1", "filler")


def test_sft_config_rejects_an_unknown_format(tiny_config):
  from s2jax.config import validate_train_config
  c = tiny_config()
  c.data.format = "dots"
  with pytest.raises(ValueError, match="data.format"):
    validate_train_config(c)


# --------------------------------------------------------------- matched-size filters

def test_size_of_caps_a_filter_at_another_filters_count():
  rng = np.random.default_rng(0)
  correct = rng.random((50, 4)) < 0.6
  scores = rng.random((50, 4))
  star = distill.select("correct", scores=scores, correct=correct, rng=np.random.default_rng(1))
  capped = distill.select("correct", scores=scores, correct=correct,
                          rng=np.random.default_rng(1), size_of="prm_topk")
  assert star.sum() > 50 and capped.sum() == 50  # prm_topk keeps one per problem
  assert not (capped & ~star).any()               # a subset of what STaR keeps
  assert correct[capped].all()
  few = correct & (rng.random((50, 4)) < 0.1)
  kept = distill.select("correct", scores=scores, correct=few, rng=np.random.default_rng(1),
                        size_of="prm_topk")
  assert (kept == few).all()  # fewer than the cap: unchanged


# ------------------------------------------------------------------------ task grids

@pytest.mark.parametrize("axis,value", [("steps", 7), ("distractors", 5), ("entities_chain", 9),
                                        ("entities_distractors", 11)])
def test_grid_points_have_what_they_say(axis, value):
  task = dict(min_steps=1, max_steps=4, min_distractors=0, max_distractors=2,
              ops=("add", "sub", "mul"), max_value=40, families=(0, 1))
  recs = ablation.grid_records(task, ablation.axis_overrides(axis, value), 20, 0, "g")
  again = ablation.grid_records(task, ablation.axis_overrides(axis, value), 20, 0, "g")
  assert recs == again  # the same problems for every policy
  for r in recs:
    m = r["meta"]
    entities = m["num_steps"] + 1 + m["num_distractors"]
    got = {"steps": m["num_steps"], "distractors": m["num_distractors"],
           "entities_chain": entities, "entities_distractors": entities}[axis]
    assert got == value
    assert len(m["values"]) == entities
    if axis == "entities_chain":
      assert m["num_distractors"] == 0
    if axis == "entities_distractors":
      assert m["num_steps"] == 2
    if axis == "steps":
      assert m["num_distractors"] <= 2  # the rest as in training


def test_grid_axis_errors_are_named():
  with pytest.raises(ValueError, match="unknown grid axis 'depth'"):
    ablation.axis_overrides("depth", 3)
  with pytest.raises(ValueError, match="too small"):
    ablation.axis_overrides("entities_distractors", 2)


# ------------------------------------------------------------------ compute, seeds, points

def test_compute_counts_of_a_real_run(tiny_pipeline):
  import glob
  from s2jax import workdirs
  from s2jax.data import batches
  from s2jax.metrics import latest_per_step, read_metrics
  wd = tiny_pipeline["workdir"]
  sft = os.path.join(wd, "sft")
  lines = latest_per_step([m for m in read_metrics(os.path.join(sft, "metrics.jsonl"))
                           if "loss" in m])
  assert compute.sft_passes(sft) == 3 * sum(m["trained_positions"] for m in lines) > 0
  # The verifier's sampling is the prompt + generated tokens of its cached training
  # samples; each prompt count is the prompt's own encoding.
  v = compute.verifier_passes(os.path.join(wd, "verifier"))
  tok = workdirs.tokenizer(sft, workdirs.read_config(sft))
  caches = [[json.loads(line) for line in open(p)]  # the verifier's and distillation's
            for p in glob.glob(os.path.join(sft, "samples", "samples_train_*.jsonl"))]
  assert v["sampling"] in [sum(a + b for r in recs for a, b in r["sample_tokens"])
                           for recs in caches]
  for r in (r for recs in caches for r in recs):
    assert {a for a, _ in r["sample_tokens"]} == {len(batches.encode_prompt(tok, r["question"]))}
  assert v["total"] == v["sampling"] + v["training"] and v["training"] > 0
  p = compute.ppo_passes(os.path.join(wd, "ppo"))
  rl = json.load(open(os.path.join(wd, "ppo", "config.json")))["rl"]
  assert p["iterations"] == rl["train"]["iterations"]
  assert p["total"] == pytest.approx(p["rollout"] + p["scoring"] + p["update"])
  # the tiny PPO rewards steps with the PRM, so the PRM scores every rollout token once
  assert p["scoring"] == pytest.approx(p["rollout"])
  d = compute.distill_passes(os.path.join(wd, "distill"))
  assert d["total"] == pytest.approx(d["sampling"] + d["scoring"] + d["training"])


def test_compute_from_logged_counts_by_hand(tmp_path):
  from s2jax.metrics import MetricWriter
  w = MetricWriter(str(tmp_path))
  w.write(0, event="data", sampled_tokens=1000)
  w.write(2, loss=1.0, trained_positions=64.0)
  w.write(4, loss=1.0, trained_positions=96.0)
  w.write(4, loss=1.0, trained_positions=96.0)  # a resumed run's repeated line
  assert compute.trained_passes(str(tmp_path)) == 3 * (64 + 96)
  v = compute.verifier_passes(str(tmp_path))
  assert (v["sampling"], v["training"]) == (1000, 480)
  w.write(0, event="data", sampled_tokens=None)
  with pytest.raises(ValueError, match="no count of sampled tokens"):
    compute.verifier_passes(str(tmp_path))
  old = tmp_path / "old"
  MetricWriter(str(old)).write(2, loss=1.0)
  with pytest.raises(ValueError, match="no trained_positions"):
    compute.trained_passes(str(old))


def test_an_rl_iteration_is_charged_only_for_what_it_runs():
  from types import SimpleNamespace
  from s2jax.rl.learner import Learner
  prompts, lengths, shape = [[1, 2, 3], [4, 5]], [4, 6], (2, 9)  # 2 rows, 3 + 6 positions

  def counts(sources, value=None, epochs=2):
    fake = SimpleNamespace(reward_sources=sources, value=value, cfg=SimpleNamespace(epochs=epochs))
    return Learner.counts(fake, prompts, lengths, shape)
  outcome_only = counts([("exact_outcome", 1.0)])
  assert outcome_only == {"prompt_tokens": 5, "generated_tokens": 10, "scored_tokens": 0,
                          "forward_positions": 36, "update_positions": 36}
  assert counts([("prm_steps", 1.0), ("orm", 1.0)])["scored_tokens"] == 30
  critic = counts([("prm_steps", 1.0)], value=object(), epochs=3)
  assert (critic["forward_positions"], critic["update_positions"]) == (54, 108)


def test_mean_and_spread_over_seeds():
  assert ablation.mean_std([0.2, 0.4, 0.6]) == pytest.approx((0.4, 0.2))
  assert ablation.fmt([0.2, 0.4, 0.6]) == "0.400 ± 0.200"
  assert ablation.fmt([0.5, None]) == "0.500 ± 0.000 (n=1)"
  assert np.isnan(ablation.mean_std([])[0])


def test_points_and_dry_run_print_one_job_per_point(tmp_path):
  p = _script("rl_vs_sft", str(tmp_path), "--dry_run")
  assert p.returncode == 0, p.stderr[-2000:]
  lines = p.stdout.strip().splitlines()
  assert [l.rsplit("--point=", 1)[-1] for l in lines[:-1]] == [
      "seed0/ppo_prm", "seed0/sft_more", "seed0/ppo_outcome"]
  assert lines[-1].endswith("--report_only")
  assert not os.path.exists(tmp_path / "pipeline")  # nothing ran
  bad = _script("rl_vs_sft", str(tmp_path), "--point=seed0/magic")
  assert bad.returncode != 0 and "unknown point 'seed0/magic'" in bad.stderr
  with pytest.raises(ValueError, match="seed<k>/<arm>"):
    ablation.parse_point("ppo")


@pytest.mark.parametrize("name", ABLATIONS)
def test_every_ablation_config_has_a_sweep_over_three_seeds(name):
  from s2jax.config import load_config_file
  import importlib.util
  path = os.path.join(ROOT, "configs", "ablations", f"{name}.py")
  c = load_config_file(path)
  spec = importlib.util.spec_from_file_location("_c", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  points = module.points(c)
  assert tuple(c.seeds) == (0, 1, 2)
  assert {ablation.parse_point(p)[0] for p in points} == {0, 1, 2}
  assert len(points) == len(set(points))
  # Every policy the ablation compares is graded on 500 problems per split, enough for a
  # paired comparison to see a 5-point difference at a 20% discordant rate.
  from s2jax import stats
  p = c.pipeline
  assert p.sft.data.num_eval == p.distill.eval.num_problems == p.ppo.eval.num_problems == 500
  assert stats.minimum_detectable_effect(p.sft.data.num_eval, 0.2) < 0.06


# ---------------------------------------------------------------------- end to end

def test_distill_filters_end_to_end(tiny_pipeline):
  root = tiny_pipeline["root"]
  p = _script("distill_filters", root)
  assert p.returncode == 0, p.stderr[-3000:]
  md = open(os.path.join(root, "results", "distill_filters.md")).read()
  assert "| PRM top-1 |" in md and "| random |" in md and "| SFT (start) |" in md
  data = json.load(open(os.path.join(root, "results", "distill_filters.json")))
  assert data["run_info"]["commit"] and data["config"]["seeds"] == [0]
  kept = {arm: r["0"]["selection"]["kept"] for arm, r in data["runs"].items() if arm != "SFT"}
  assert kept["random"] == kept["prm_topk"]  # matched data size
  assert os.path.getsize(os.path.join(root, "results", "distill_filters.png")) > 1000
  # The report regenerates from the saved runs alone.
  again = _script("distill_filters", root, "--report_only")
  assert again.returncode == 0, again.stderr[-2000:]
  # Provenance: the runs behind the numbers, not only the call that wrote the report.
  data = json.load(open(os.path.join(root, "results", "distill_filters.json")))
  where = {(r["where"], r["what"], r["status"]) for r in data["launches"]}
  assert ("distill_filters", "ablation.py", "ok") in where  # the launch that ran the points
  assert any(w == "pipeline seed0" and what == "sft" for w, what, _ in where)
  md = open(os.path.join(root, "results", "distill_filters.md")).read()
  assert "## Runs behind these numbers" in md
  # Only the report's own launch is unfinished while it writes, and nothing failed.
  n = len(data["launches"])
  assert f"{n} launches: 0 failed or killed, 1 still running" in md
  assert [r["status"] for r in data["launches"]].count("running") == 1
  # The same report from an archive of the workdir (no checkpoints), as a later session on
  # a fresh machine writes it: the archive alone, copied away from the workdir.
  archived = os.path.join(root, "archived")
  saved = _script("distill_filters", root, "--report_only", f"--archive={archived}",
                  f"--out={os.path.join(root, 'from_archive', 'distill_filters')}")
  assert saved.returncode == 0, saved.stderr[-2000:]
  assert not [d for d, _, _ in os.walk(archived) if "checkpoints" in d.split(os.sep)]
  fresh = os.path.join(root, "fresh_machine")
  shutil.copytree(archived, os.path.join(fresh, "archive"))
  again = _script("distill_filters", os.path.join(fresh, "workdir"), "--report_only",
                  f"--archive={os.path.join(fresh, 'archive')}",
                  f"--out={os.path.join(fresh, 'distill_filters')}")
  assert again.returncode == 0, again.stderr[-2000:]
  for where in (os.path.join(root, "from_archive"), fresh):
    other = json.load(open(os.path.join(where, "distill_filters.json")))
    assert other["runs"] == data["runs"] and other["paired"] == data["paired"]
    # Every launch of the live report is there, finished, plus the later reports' own.
    by_id = {r["id"]: r for r in other["launches"]}
    assert all(by_id[r["id"]]["status"] == r["status"] for r in data["launches"]
               if r["status"] == "ok")


def test_a_scratch_policy_is_trained_once_and_shared(tmp_path):
  from s2jax import config_blocks, report
  c = config_blocks.ablation(os.path.join(ROOT, "configs", "ablations", "filler_tokens.py"),
                             "tiny")
  c.scratch_sft.train.steps = 2
  c.scratch_sft.data.num_eval = 2
  root = str(tmp_path)
  width, fmt = c.scratch_sft.model.d_model, c.scratch_sft.data.format
  c.scratch_sft.model.mlp_dim = 3 * width  # a width's policy has a 3x MLP
  d = ablation.scratch_policy(c, root, 0, fmt=fmt)  # filler_tokens' own-format arm
  assert ablation.scratch_policy(c, root, 0, width=width) == d  # working_memory's
  assert ablation.scratch_policy(c, root, 0) == d
  assert [r["status"] for r in report.read_launches(d)] == ["ok"]  # trained once
  other = ablation.scratch_policy(c, root, 0, width=2 * width)
  assert other.endswith(f"d{2 * width}") and other != d
  # The launches behind a report name which scratch policy they trained.
  launches = ablation.scratch_launches(root, (0,), [os.path.basename(d)])
  assert [r["where"] for r in launches] == [f"scratch_sft seed0 {os.path.basename(d)}"]
  # The model's compute layout (same parameters, same function) still finds the policy ...
  c.scratch_sft.model.update(scan_unroll=0, fused_qkv=True)
  assert ablation.scratch_policy(c, root, 0) == d
  assert [r["status"] for r in report.read_launches(d)] == ["ok"]
  # ... but a policy trained under another block is never reused silently.
  c.scratch_sft.train.steps = 3
  with pytest.raises(ValueError, match="another scratch_sft config.*train"):
    ablation.scratch_policy(c, root, 0)


@pytest.mark.slow
@pytest.mark.parametrize("name", [a for a in ABLATIONS if a != "distill_filters"])
def test_ablation_end_to_end(tiny_pipeline, name):
  root = tiny_pipeline["root"]
  p = _script(name, root)
  assert p.returncode == 0, p.stderr[-3000:]
  md = open(os.path.join(root, "results", f"{name}.md")).read()
  assert "git commit" in md and f"{name}.png" in md
  assert os.path.getsize(os.path.join(root, "results", f"{name}.png")) > 1000


def test_a_resumed_runs_repeated_steps_count_once():
  from s2jax.metrics import latest_per_step
  logged = [{"step": 1, "x": 1}, {"step": 2, "x": 2}, {"step": 3, "x": 3},
            {"step": 2, "x": 20}, {"step": 3, "x": 30}, {"step": 4, "x": 40}]
  assert [m["x"] for m in latest_per_step(logged)] == [1, 20, 30, 40]


def test_an_ablation_config_names_its_module(root):
  from s2jax import ablations
  from s2jax.config import load_config_file
  assert ablations.names() == sorted(ABLATIONS)
  for name in ABLATIONS:
    c = load_config_file(os.path.join(root, "configs", "ablations", f"{name}.py:tiny"))
    module = ablations.get(c.name)
    assert module.NAME == name and c.seeds == (0,)
  with pytest.raises(ValueError, match="known: distill_filters, domain_shift"):
    ablations.get("nope")


def test_launch_summary_keeps_launches_without_an_end_line_apart():
  launches = [dict(where="pipeline seed0", status="ok", seconds=600.0),
              dict(where="pipeline seed1", status="unfinished", seconds=1200.0),
              dict(where="verifier_budget", status="ok", seconds=120.0),
              dict(where="verifier_budget", status="failed", seconds=60.0),
              dict(where="verifier_budget", status="unfinished", seconds=10_000.0),
              dict(where="verifier_budget", status="running", seconds=6.0)]
  line = ablation.launch_summary(launches, "verifier_budget")
  assert line.startswith("6 launches: 1 failed or killed, 2 unfinished when archived")
  # 10 min ended in the pipeline, 20 open; 3.1 min ended in the script, 166.7 open.
  assert ("Minutes: pipeline 10.0 (+20.0 in launches with no end line), verifier_budget "
          "3.1 (+166.7 in launches with no end line);") in line


def test_paired_table_pools_seeds_on_the_same_problems():
  from s2jax import stats
  sft = {0: [1, 0, 0, 0, 1, 0], 1: [0, 0, 1, 0, 0, 0]}
  ppo = {0: [1, 1, 1, 0, 1, 0], 1: [1, 0, 1, 1, 0, 0]}
  runs = {"SFT": {s: {"per_problem": {"test": {"correct": v}}} for s, v in sft.items()},
          "ppo": {s: {"per_problem": {"test": {"correct": v}, "shift": {"correct": v[:3]}}}
                  for s, v in ppo.items()}}
  md, data = ablation.paired_table(runs, [("ppo", "SFT")], ["test", "shift"], {"SFT": "SFT"})
  want = stats.compare_pooled([(sft[0], ppo[0]), (sft[1], ppo[1])])
  assert data["ppo vs SFT"]["test"] == want
  assert "shift" not in data["ppo vs SFT"]  # the baseline has no outcomes there: no pairing
  row = [line for line in "\n".join(md).splitlines() if line.startswith("| ppo vs SFT | test |")]
  assert row and f"{want['difference']:+.3f}" in row[0] and want["verdict"] in row[0]
  assert ablation.paired_table(runs, [("sft_more", "SFT")], ["test"], {}) == ([], {})


def test_verifier_budget_names_a_best_split_only_when_the_interval_does():
  from s2jax.ablations import verifier_budget as vb
  r = {"problems": 10, "tokens_per_sample": 100.0, "verifier_passes": {"total": 5000.0}}
  assert vb.total_passes(r, 1) == 5000 + 1000  # best-of-1 needs no scoring
  assert vb.total_passes(r, 4) == 5000 + 4000 + 4000
  assert vb.total_passes(r, 4, "majority") == 4000  # no verifier at all
  strong = [1.0] * 80 + [0.0] * 20
  close = [1.0] * 79 + [0.0] * 21  # one problem apart
  weak = [1.0] * 40 + [0.0] * 60
  points = [{"name": "prm", "passes": 100.0, "accuracy": 0.8, "per_problem": {0: strong}},
            {"name": "majority", "passes": 50.0, "accuracy": 0.79, "per_problem": {0: close}},
            {"name": "small prm", "passes": 60.0, "accuracy": 0.4, "per_problem": {0: weak}},
            {"name": "too big", "passes": 500.0, "accuracy": 0.9, "per_problem": {0: strong}}]
  f = vb.frontier_at(points, 100.0)
  assert f["best"] == "prm" and f["tied"] == ["majority"]  # 0.8 vs 0.79: no difference seen
  assert vb.frontier_at(points, 60.0) == {"budget": 60.0, "best": "majority",
                                          "accuracy": 0.79, "tied": []}


def test_verifier_budget_pairs_each_prm_with_majority_vote_at_the_same_n():
  from s2jax import stats
  from s2jax.ablations import verifier_budget as vb
  maj = {0: [1.0] * 70 + [0.0] * 30, 1: [1.0] * 60 + [0.0] * 40}
  worse = {0: [1.0] * 50 + [0.0] * 50, 1: [1.0] * 40 + [0.0] * 60}  # 20 problems fewer
  one = {0: [1.0] * 10 + [0.0] * 90}

  def pt(name, method, n, per):
    return {"name": name, "method": method, "n": n, "passes": 1.0, "accuracy": 0.0,
            "per_problem": per}
  points = [pt("PRM 50 problems, N=1", "prm_best", 1, one),
            pt("PRM 50 problems, N=4", "prm_best", 4, worse),
            pt("PRM 400 problems, N=4", "prm_best", 4, {0: maj[0], 2: maj[0]}),  # seed 2: no majority run
            pt("majority vote, N=1", "majority", 1, one),
            pt("majority vote, N=4", "majority", 4, maj)]
  md, data = vb.against_majority(points)
  assert sorted(data) == ["PRM 400 problems, N=4", "PRM 50 problems, N=4"]  # N=1 left out
  c = data["PRM 50 problems, N=4"]
  assert c == stats.compare_pooled([(maj[0], worse[0]), (maj[1], worse[1])])
  assert (c["n"], c["a"], c["b"]) == (200, 0.65, 0.45) and c["difference"] == -0.2
  assert c["verdict"] == "hurts"  # every pair discordant one way: the interval is all < 0
  same = data["PRM 400 problems, N=4"]
  assert same["n"] == 100 and same["difference"] == 0 and same["ci"] == [0.0, 0.0]
  assert "| PRM 50 problems best-of-4 vs majority vote | 200 (2 seeds) |" in "\n".join(md)


def test_grid_comparisons_pool_seeds_and_points_beyond_training():
  from s2jax import stats
  rng = np.random.default_rng(3)

  def point():
    g = rng.random(40) < 0.3
    best = (g | (rng.random(40) < 0.3)).astype(float)
    return {"per_problem_greedy": g.astype(int).tolist(),
            "per_problem": {"prm_best": {"4": best.tolist()}}}
  runs = {p: {s: {"steps": {str(v): point() for v in (5, 6)}} for s in (0, 1)}
          for p in ("sft", "ppo")}
  md, data = ablation.pooled_grid_comparisons(runs, "steps", [5, 6], {"sft": "SFT"},
                                              search_n=4)
  pairs = [(runs["sft"][s]["steps"][v]["per_problem_greedy"],
            runs["ppo"][s]["steps"][v]["per_problem_greedy"]) for s in (0, 1) for v in ("5", "6")]
  assert data["ppo vs SFT, greedy"] == stats.compare_pooled(pairs)
  assert data["ppo vs SFT, greedy"]["n"] == 160
  assert data["SFT: PRM best-of-4 vs greedy"]["verdict"] == "helps"  # best-of-4 adds solves
  assert "ppo vs SFT, greedy" in "\n".join(md)


@pytest.mark.parametrize("name", ABLATIONS)
def test_every_helper_an_ablation_calls_exists(name):
  # The end-to-end runs of five ablations are slow tests that CI leaves out; a helper
  # renamed in common.py would otherwise surface only hours into a real run.
  import ast
  import importlib
  module = importlib.import_module(f"s2jax.ablations.{name}")
  tree = ast.parse(open(module.__file__).read())
  used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
          and isinstance(n.value, ast.Name) and n.value.id == "ablation"}
  assert used and not [a for a in used if not hasattr(ablation, a)]
