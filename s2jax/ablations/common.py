"""What every ablation shares: the per-seed pipeline runs, one job per point, grids of
task variants, mean and spread over seeds, and the machine-written result section.

An ablation is a config file (configs/ablations/<name>.py: `get_config()` with `seeds` and
a `pipeline` block, and `points(config)`, the sweep), a module s2jax/ablations/<name>.py,
and the script experiments/ablation.py (s2jax.cli.ablation) that runs one point
(`--point=<name>`), every point in turn (the default; finished points are skipped, so a re-run resumes), or only the report
(`--report_only`). Every point of every ablation with seed s starts from the same pipeline
run, <workdir>/pipeline/seed<s>, so the SFT policy, the PRM, the distilled and the PPO
policy of a seed are trained once for all six ablations.
"""
from __future__ import annotations

import json
import os
import shlex
import sys
from typing import Callable, Sequence

import numpy as np

from s2jax import report
from s2jax.tasks import splits


def pipeline_dir(workdir: str, seed: int) -> str:
  return os.path.join(workdir, "pipeline", f"seed{seed}")


def pipeline_config(config, seed: int):
  import ml_collections
  c = ml_collections.ConfigDict(config.pipeline.to_dict())
  c.seed = seed
  return c


def run_pipeline(config, workdir: str, seed: int) -> str:
  """The shared pipeline of one seed (stages that finished before are skipped)."""
  from s2jax import pipeline
  d = pipeline_dir(workdir, seed)
  if not os.path.exists(os.path.join(d, "metrics.json")):
    pipeline.run(pipeline_config(config, seed), d)
  return d


def stage_policy(config, workdir: str, seed: int, stage: str) -> str:
  from s2jax import pipeline
  return pipeline.policy_dir(pipeline_dir(workdir, seed), stage, config.pipeline)


SCRATCH = "scratch_sft"


def scratch_policy(config, workdir: str, seed: int, *, fmt: str = "",
                   width: int = 0) -> str:
  """The seed's policy trained from scratch with the ablations' one SFT block
  (config.scratch_sft), its training target format and width (mlp 3x) optionally
  changed. Each distinct policy is trained once, under <workdir>/scratch_sft/seed<s>/, and
  shared: filler_tokens' chain-of-thought arm is working_memory's policy of the block's
  own width. Its training launches are recorded there (runs_behind lists them)."""
  import ml_collections
  from s2jax.stages import sft
  c = ml_collections.ConfigDict(config.scratch_sft.to_dict())
  c.seed = seed
  if fmt:
    c.data.format = fmt
  if width:
    c.model.update(d_model=width, mlp_dim=3 * width)
  d = os.path.join(workdir, SCRATCH, f"seed{seed}", f"{c.data.format}_d{c.model.d_model}")
  # A policy trained under another scratch_sft block (an override on one ablation's
  # command) must not be shared silently; the model's compute layout does not make another
  # policy.
  recorded = os.path.join(d, "scratch_config.json")
  if os.path.exists(recorded):
    with open(recorded) as f:
      before = _without_compute_layout(json.load(f))
    now = _without_compute_layout(json.loads(c.to_json_best_effort()))
    if before != now:
      diff = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
      raise ValueError(f"{d} was trained with another scratch_sft config (blocks differ: "
                       f"{diff}); give this run another --workdir")
  if not report.is_done(d):
    os.makedirs(d, exist_ok=True)
    with open(recorded, "w") as f:
      f.write(c.to_json_best_effort(indent=2))
    with report.launch(d, "scratch SFT"):
      sft.run(c, d)
    report.mark_done(d)
  return d


def _without_compute_layout(block: dict) -> dict:
  from s2jax.models.transformer import ModelConfig
  model = {k: v for k, v in block.get("model", {}).items()
           if k not in ModelConfig.COMPUTE_LAYOUT}
  return dict(block, model=model)


def scratch_launches(workdir: str, seeds: Sequence[int], policies: Sequence[str]) -> list:
  """The training launches of the scratch policies (directory names under
  <workdir>/scratch_sft/seed<s>/) behind an ablation's numbers."""
  return [dict(r, where=f"{SCRATCH} seed{seed} {name}")
          for seed in seeds for name in policies
          for r in report.read_launches(os.path.join(workdir, SCRATCH, f"seed{seed}", name))]


def parse_point(name: str) -> tuple[int, str]:
  """'seed1/sft_more' -> (1, 'sft_more')."""
  head, _, arm = name.partition("/")
  if not head.startswith("seed") or not head[4:].isdigit() or not arm:
    raise ValueError(f"point {name!r} is not of the form seed<k>/<arm>")
  return int(head[4:]), arm


def main_loop(argv: Sequence[str], *, config, points: list,
              run_point: Callable[[int, str], None], write: Callable[[], None],
              point: str = "", dry_run: bool = False, report_only: bool = False) -> None:
  """The three ways to launch an ablation script (see the module docstring)."""
  names = [p for p in points]
  if point and point not in names:
    raise ValueError(f"unknown point {point!r}; this config's points: {', '.join(names)}")
  if dry_run:
    base = [a for a in argv if not a.startswith(("--point", "--dry_run", "--report_only"))]
    for p in names:
      print(" ".join(shlex.quote(a) for a in [sys.executable] + base + [f"--point={p}"]))
    print(" ".join(shlex.quote(a) for a in [sys.executable] + base + ["--report_only"]))
    return
  if not report_only:
    for p in ([point] if point else names):
      seed, arm = parse_point(p)
      print(f"== ablation point {p}", flush=True)
      run_point(seed, arm)
  if not point:
    write()


def prepare_out(out: str) -> str:
  os.makedirs(os.path.dirname(os.path.abspath(out)) or ".", exist_ok=True)
  return out


# ------------------------------------------------------------------------- task grids

def grid_problems(task: dict, overrides: dict, n: int, seed: int, name: str) -> list:
  """n problems of the task with `overrides` (e.g. min_steps=max_steps=8); the same
  problems for every policy (seeded by the point's name)."""
  from s2jax.tasks.arith import generate_split
  return generate_split(splits.task_config(task, overrides), n, splits.split_seed(seed, name))


def grid_records(task: dict, overrides: dict, n: int, seed: int, name: str) -> list[dict]:
  """grid_problems as GSM8K-format records."""
  return [p.to_json() for p in grid_problems(task, overrides, n, seed, name)]


def grid_budget_errors(sft_config, axes: dict, *, seeds, num_problems: int,
                       max_new_tokens: int, max_cache_len: int, tokenizer,
                       formats: tuple = (), margin: int = 8) -> list[str]:
  """Every grid point (of every seed) whose longest reference, in each training format
  (default: the SFT config's), does not fit max_new_tokens plus margin, or whose longest
  prompt ([bos] question newline) does not fit the cache beside max_new_tokens: a grid
  evaluated at such a budget measures truncation, or fails hours in."""
  from s2jax import budgets, tasks
  task = tasks.for_config(sft_config)
  formats = formats or (sft_config.data.get("format", "cot"),)
  errors = []
  for axis, values in axes.items():
    for v in values:
      name = f"grid_{axis}_{v}"
      problems = [p for seed in seeds for p in grid_problems(
          sft_config.task.to_dict(), axis_overrides(axis, int(v)), num_problems, seed, name)]
      for fmt in formats:
        longest = budgets.longest_of(problems, task, fmt, tokenizer)
        error = budgets.truncation_error("max_new_tokens", max_new_tokens,
                                         f"{axis}={v} ({fmt})", longest, margin)
        if error:
          errors.append(error)
      if longest["question"] + 2 + max_new_tokens > max_cache_len:
        errors.append(f"max_cache_len={max_cache_len} cannot hold {axis}={v}'s longest "
                      f"prompt ({longest['question'] + 2} tokens) and max_new_tokens="
                      f"{max_new_tokens}")
  return errors


AXES = ("steps", "distractors", "entities_chain", "entities_distractors")


def axis_overrides(axis: str, value: int) -> dict:
  """One point of a grid axis: `steps` (chain length) or `distractors` (the other keys as
  in training), or a number of entities in the question (the given one, the derived ones
  and the distractors), either all on the chain (`entities_chain`: value-1 steps, no
  distractors) or two steps and the rest distractors (`entities_distractors`)."""
  if axis == "steps":
    return {"min_steps": value, "max_steps": value}
  if axis == "distractors":
    return {"min_distractors": value, "max_distractors": value}
  if axis == "entities_chain" and value >= 2:
    return {"min_steps": value - 1, "max_steps": value - 1, "min_distractors": 0,
            "max_distractors": 0}
  if axis == "entities_distractors" and value >= 3:
    return {"min_steps": 2, "max_steps": 2, "min_distractors": value - 3,
            "max_distractors": value - 3}
  if axis in AXES:
    raise ValueError(f"grid axis {axis!r}: value {value} is too small")
  raise ValueError(f"unknown grid axis {axis!r}; known: {', '.join(AXES)}")


def cached_json(path: str, compute: Callable[[], dict]) -> dict:
  """compute() once; its result is kept at path (a re-run reads it)."""
  if os.path.exists(path):
    with open(path) as f:
      return json.load(f)
  value = compute()
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path + ".tmp", "w") as f:
    json.dump(value, f, indent=2)
  os.replace(path + ".tmp", path)
  return value


# ------------------------------------------------------------------- seeds and reports

def mean_std(xs: Sequence[float]) -> tuple[float, float]:
  xs = np.asarray([x for x in xs if x is not None], float)
  if not len(xs):
    return float("nan"), float("nan")
  return float(xs.mean()), float(xs.std(ddof=1)) if len(xs) > 1 else 0.0


def fmt(xs: Sequence[float], digits: int = 3) -> str:
  """'mean ± sd (n)' over seeds."""
  m, s = mean_std(xs)
  n = len([x for x in xs if x is not None])
  return f"{m:.{digits}f} ± {s:.{digits}f}" + ("" if n == 3 else f" (n={n})")


def header(title: str, script: str, config, info: dict) -> list:
  return [f"# {title}", "",
          f"Machine-written by `{script}` from the ablation's workdirs; regenerate with "
          "`--report_only`; every launch behind the numbers is listed at the end. Mean ± "
          f"standard deviation (sample sd, ddof=1) over those of the seeds {tuple(config.seeds)} "
          "whose runs have finished: each cell's n says how many, and a paired row's "
          "n says how many problems and seeds it pools.", "",
          f"- command: `{info['command']}`", f"- git commit: `{info['commit']}`",
          f"- written: {info['started']}", ""]


def runs_behind(config, workdir: str, scratch: Sequence[str] = ()) -> list[dict]:
  """Every launch behind an ablation's numbers, failed and killed ones included: each
  seed's shared pipeline, the scratch policies it evaluates (directory names, see
  scratch_policy) and every launch of the ablation script for this ablation."""
  out = scratch_launches(workdir, config.seeds, scratch)
  for seed in config.seeds:
    out += [dict(r, where=f"pipeline seed{seed}")
            for r in report.read_launches(pipeline_dir(workdir, seed))]
  out += [dict(r, where=config.name)
          for r in report.read_launches(os.path.join(workdir, config.name))]
  return out


def launch_summary(launches: Sequence[dict], name: str) -> str:
  """One line: how many launches ended how, and the minutes of each group ("where" up to
  " seed"), those of launches with no end line apart: they are charged up to their last
  heartbeat or, by code from before heartbeats, up to a save or the next launch, which
  can be hours after they stopped."""
  running = sum(r["status"] == "running" for r in launches)  # this report's own, at least
  # "unfinished": no end line when its workdir was archived (s2jax.archive): still running
  # in another process then, or stopped without one.
  unfinished = sum(r["status"] == "unfinished" for r in launches)
  bad = sum(r["status"] not in ("ok", "running", "unfinished") for r in launches)
  ended, open_ = {}, {}
  for r in launches:
    group = r["where"].split(" seed")[0]
    ended.setdefault(group, 0.0)
    minutes = open_ if r["status"] in ("unfinished", "killed") else ended
    minutes[group] = minutes.get(group, 0.0) + r["seconds"] / 60
  return (f"{len(launches)} launches: {bad} failed or killed, "
          + (f"{unfinished} unfinished when archived (running elsewhere or stopped), "
             if unfinished else "")
          + f"{running} still running (this report's own launch among them). Minutes: "
          + ", ".join(f"{g} {m:.1f}" + (f" (+{open_[g]:.1f} in launches with no end line)"
                                         if g in open_ else "") for g, m in ended.items())
          + f"; a launch of the {name} script includes the shared pipeline and "
          "scratch-policy launches it ran, so these overlap. A launch with no end line is "
          "charged up to its last heartbeat or, before heartbeats, at most up to the save "
          "that closed it or the next launch:")


def write_result(out: str, md: list, data: dict, config, workdir: str,
                 scratch: Sequence[str] = ()) -> None:
  """<out>.md and <out>.json (the numbers, the config that produced them and every launch
  of the runs behind them, `scratch` naming the scratch policies among them)."""
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  launches = runs_behind(config, workdir, scratch)
  with open(out + ".json", "w") as f:
    json.dump({"run_info": report.run_info(), "config": config.to_dict(), **data,
               "launches": launches}, f, indent=2, default=list)
  md = md + ["## Runs behind these numbers", "", launch_summary(launches, config.name), "",
             report.launches_table(launches, where=True), ""]
  with open(out + ".md", "w") as f:
    f.write("\n".join(md) + "\n")


def paired_table(runs: dict, comparisons: Sequence[tuple[str, str]], splits: Sequence[str],
                 labels: dict, *, key: str = "correct") -> tuple[list, dict]:
  """(arm, baseline) pairs compared on the same problems, pooled over seeds:
  runs = {arm: {seed: {"per_problem": {split: {"correct": [...]}}}}}. Returns report lines
  (difference, 95% stratified bootstrap interval, n, the smallest detectable effect, the
  verdict from the interval) and the numbers."""
  from s2jax import stats
  rows, data = [], {}
  for arm, base in comparisons:
    for split in splits:
      pairs = []
      for seed, r in runs.get(arm, {}).items():
        a = ((runs.get(base, {}).get(seed) or {}).get("per_problem") or {}).get(split)
        b = (r.get("per_problem") or {}).get(split)
        if a and b and len(a[key]) == len(b[key]):
          pairs.append((a[key], b[key]))
      if not pairs:
        continue
      c = stats.compare_pooled(pairs)
      data.setdefault(f"{arm} vs {base}", {})[split] = c
      rows.append([f"{labels.get(arm, arm)} vs {labels.get(base, base)}", split,
                   f"{c['n']} ({c['seeds']} seeds)", *report.pooled_cells(c)])
  if not rows:
    return [], data
  md = ["Paired on the same problems, pooled over seeds (difference of accuracy, 95% "
        "stratified bootstrap interval over each seed's problems; detectable = the smallest "
        "effect this n finds with 80% power; the verdict comes from the interval alone):", "",
        report.markdown_table(["comparison", "split", "n problems", *report.POOLED_COLUMNS],
                              rows), ""]
  return md, data


def pooled_grid_comparisons(runs: dict, axis: str, values: Sequence, labels: dict,
                            baseline: str = "sft", search_n: int = 0) -> tuple[list, dict]:
  """Report lines for one grid axis: each policy's greedy accuracy against the baseline
  policy's, and PRM best-of-N against the same policy's greedy, on the same problems,
  pooled over seeds and the given grid values (strata: seed x value)."""
  from s2jax import stats

  def outcomes(grid, v, kind):
    point = grid[axis][str(v)]
    if kind == "greedy":
      return point.get("per_problem_greedy")
    return (point.get("per_problem") or {}).get(kind, {}).get(str(search_n))
  rows, data = [], {}

  def add(name, pairs):
    if not pairs:
      return
    c = stats.compare_pooled(pairs)
    data[name] = c
    rows.append([name, f"{c['n']} ({c['seeds']} strata)", *report.pooled_cells(c)])
  for policy, by_seed in runs.items():
    if policy != baseline:
      pairs = [(outcomes(runs[baseline][seed], v, "greedy"), outcomes(g, v, "greedy"))
               for seed, g in by_seed.items() if seed in runs.get(baseline, {})
               for v in values]
      add(f"{labels.get(policy, policy)} vs {labels.get(baseline, baseline)}, greedy",
          [(a, b) for a, b in pairs if a and b])
    if search_n:
      pairs = [(outcomes(g, v, "greedy"), outcomes(g, v, "prm_best"))
               for g in by_seed.values() for v in values]
      add(f"{labels.get(policy, policy)}: PRM best-of-{search_n} vs greedy",
          [(a, b) for a, b in pairs if a and b])
  if not rows:
    return [], data
  return ([f"Paired on the same problems, pooled over seeds and {axis} = "
           f"{', '.join(str(v) for v in values)} (95% stratified bootstrap interval; "
           "detectable = the smallest effect this n finds with 80% power):", "",
           report.markdown_table(["comparison", "n problems", *report.POOLED_COLUMNS], rows),
           ""],
          data)


def errorbar_bars(ax, groups: Sequence[str], series: dict) -> None:
  """Grouped bars (one group per split, one bar per arm) with seed-sd error bars;
  series = {arm: {group: [values over seeds]}}."""
  width = 0.8 / max(len(series), 1)
  for i, (arm, by_group) in enumerate(series.items()):
    stats = [mean_std(by_group.get(g, [])) for g in groups]
    ax.bar(np.arange(len(groups)) + i * width, [m for m, _ in stats], width,
           yerr=[s for _, s in stats], capsize=3, label=arm)
  ax.set_xticks(np.arange(len(groups)) + 0.4 - width / 2, groups, fontsize=8)
  ax.legend(fontsize=7)


def split_names(runs: dict) -> list:
  """Every split in {arm: {seed: {"accuracy": {split: ...}}}}, `test` first."""
  return sorted({s for arm in runs.values() for r in arm.values() for s in r["accuracy"]},
                key=lambda s: (s != "test", s))


def save_bars(out: str, splits: Sequence[str], series: dict, title: str, alt: str) -> list:
  """<out>.png: accuracy bars per split and arm with seed-sd error bars; returns the
  markdown lines that show it."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(1.5 + 1.7 * len(splits), 3.6))
  errorbar_bars(ax, splits, series)
  ax.set_ylabel("greedy accuracy")
  ax.set_title(title)
  fig.tight_layout()
  fig.savefig(out + ".png", dpi=120)
  plt.close(fig)
  return [f"![{alt}]({os.path.basename(out)}.png)", ""]


def band(ax, xs: Sequence, runs: Sequence[Sequence[float]], label: str, style: str = "-",
         color=None):
  """Mean line with a ±sd band over seeds; runs = [[y over xs] per seed]."""
  arr = np.asarray(runs, float)
  m = arr.mean(axis=0)
  s = arr.std(axis=0, ddof=1) if len(arr) > 1 else np.zeros_like(m)
  line, = ax.plot(xs, m, style, marker="o", markersize=3, label=label, color=color)
  ax.fill_between(xs, m - s, m + s, alpha=0.15, color=line.get_color())
  return line.get_color()


# ------------------------------------------------------------------ policy evaluations

def greedy_results(policy, records: list, *, batch_size: int, max_new_tokens: int,
                   max_cache_len: int) -> list[dict]:
  """Per-problem greedy verdicts of a `Policy` on records (s2jax.evaluation.judge)."""
  from s2jax import evaluation, sharding
  m = policy.load()
  params, tok, mesh = m.params, m.tokenizer, m.mesh
  results, _ = evaluation.evaluate_records(
      policy.sampler(max_cache_len), params, tok, records, task=policy.task,
      batch_size=batch_size,
      max_new_tokens=max_new_tokens,
      batch_sharding=sharding.batch_sharding(mesh, 2, batch_size))
  return results


def sample_answers(policy, records: list, n: int, *, seed: int, temperature: float,
                   batch_size: int, max_new_tokens: int, max_cache_len: int) -> list[list[str]]:
  """n sampled solutions per record."""
  import jax
  from s2jax import evaluation, sharding
  from s2jax.sampling import SamplingConfig
  m = policy.load()
  params, tok, mesh = m.params, m.tokenizer, m.mesh
  questions = [r["question"] for r in records for _ in range(n)]
  texts = evaluation.generate_solutions(
      policy.sampler(max_cache_len), params, tok, questions, batch_size=batch_size,
      max_new_tokens=max_new_tokens, sampling=SamplingConfig(temperature),
      rng=jax.random.key(seed), desc=f"sample x{n}",
      batch_sharding=sharding.batch_sharding(mesh, 2, batch_size))
  return [texts[i * n:(i + 1) * n] for i in range(len(records))]


def search_accuracies(records: list, samples: list[list[str]], scorer, ns: Sequence[int],
                      aggregation: str = "min") -> dict:
  """Majority vote and PRM best-of-N accuracy at each N (averaged over the disjoint
  N-subsets of the drawn samples), with the mean generated characters per sample."""
  from s2jax import search, tasks
  task = tasks.get("arith")  # the grids are variants of the synthetic task
  probs = [task.from_json(r) for r in records]
  truth = [p.answer for p in probs]
  n_max = len(samples[0])
  answers = [task.answers(ts) for ts in samples]
  flat_q = [p.question for p, ts in zip(probs, samples) for _ in ts]
  flat_t = [t for ts in samples for t in ts]
  steps = scorer.step_scores(flat_q, [task.split_steps(t)[0] for t in flat_t])
  scores = np.asarray([search.aggregate(s, aggregation) for s in steps]).reshape(-1, n_max)
  out = {"majority": {}, "prm_best": {}, "pass": {}}
  per = {"majority": {}, "prm_best": {}}  # problem by problem, for paired comparisons
  for n in ns:
    per["majority"][str(n)] = [search.subset_accuracy(
        search.majority_candidates, n, n_max, truth[i], answers[i])
        for i in range(len(probs))]
    per["prm_best"][str(n)] = [search.subset_accuracy(
        search.best_of_n_candidates, n, n_max, truth[i], answers[i], scores[i])
        for i in range(len(probs))]
    out["pass"][str(n)] = float(np.mean([search.subset_accuracy(
        lambda a, t=truth[i]: t if t in a else None, n, n_max, truth[i], answers[i])
        for i in range(len(probs))]))
    for method in per:
      out[method][str(n)] = float(np.mean(per[method][str(n)]))
  out["per_problem"] = per
  return out




def evaluate_grid(policy_workdir: str, task: dict, axes: dict, *, seed: int, cache_dir: str,
                  num_problems: int, batch_size: int, max_new_tokens: int, max_cache_len: int,
                  prm_workdir: str = "", search: dict | None = None,
                  score_batch_size: int = 64) -> dict:
  """{axis: {value: {"greedy": acc, "majority"/"prm_best"/"pass": {n: acc}}}} of one policy
  on every point of every axis (e.g. steps=(1, ..., 12)); each point is cached under
  cache_dir, so an interrupted grid resumes. With search (n > 0) and a PRM, n samples per
  problem are also drawn and picked by majority vote and by PRM best-of-n."""
  from s2jax import verifier
  from s2jax.policy import Policy
  # Built only for a point that is not cached: a report from an archive (s2jax.archive)
  # reads cached points and has no checkpoints.
  policy = scorer = None
  out = {}
  for axis, values in axes.items():
    out[axis] = {}
    for v in values:
      name = f"grid_{axis}_{v}"
      records = grid_records(task, axis_overrides(axis, int(v)), num_problems, seed, name)

      def point():
        nonlocal policy, scorer
        policy = policy or Policy(policy_workdir)
        results = greedy_results(policy, records, batch_size=batch_size,
                                 max_new_tokens=max_new_tokens, max_cache_len=max_cache_len)
        r = {"greedy": float(np.mean([x["correct"] for x in results])),
             "fully_valid": float(np.mean([x["fully_valid"] for x in results])),
             "n": len(records),
             "per_problem_greedy": [int(x["correct"]) for x in results]}
        if search and search.get("n", 0) and prm_workdir:
          scorer = scorer or verifier.Scorer.from_workdir(prm_workdir, score_batch_size)
          samples = sample_answers(policy, records, search["n"], seed=seed + 7,
                                   temperature=search["temperature"], batch_size=batch_size,
                                   max_new_tokens=max_new_tokens, max_cache_len=max_cache_len)
          r.update(search_accuracies(records, samples, scorer, [search["n"]],
                                     search.get("aggregation", "min")))
        return r
      out[axis][str(v)] = cached_json(os.path.join(cache_dir, f"{name}.json"), point)
  return out
