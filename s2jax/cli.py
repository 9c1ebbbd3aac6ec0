"""The command line of every script: a config file, a workdir, and the library call.

  python experiments/sft.py --config=configs/arith.py --workdir=workdirs/sft
  python experiments/sft.py --config=configs/arith.py:tiny --config.train.steps=10 ...

`job` serves the stage scripts and the pipeline (with `write_report`, also `--out` and
`--report_from`, which rewrites the report from saved results without compute);
`ablation` serves the ablation script (`--point`, `--dry_run`, `--report_only`). Flags are
defined when these run, never at import, so importing a library module defines none.
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
from typing import Any, Callable, Optional


def job(run: Callable[..., Any], *, summarize: Optional[Callable[[Any], None]] = None,
        write_report: Optional[Callable[[dict, str], None]] = None,
        workdir_help: str = "Where checkpoints, data and metrics go.",
        extra_flags: Optional[Callable[[], dict]] = None) -> None:
  """`run(config, workdir, **extra)` from `--config` and `--workdir`; then `summarize`
  prints the result (process 0). `extra_flags()` defines more flags and returns
  {keyword of run: flag holder}."""
  import jax
  from absl import app, flags, logging
  from ml_collections import config_flags
  from s2jax.config import check_override_keys
  config = config_flags.DEFINE_config_file("config", None, "Path to a config file "
                                           "(path:arg passes arg to get_config).")
  workdir = flags.DEFINE_string("workdir", None, workdir_help)
  out = report_from = None
  if write_report is not None:
    # A run's report stays beside it unless asked for elsewhere, so a first run never
    # overwrites the committed results/.
    out = flags.DEFINE_string("out", None, "Where the report goes (default <workdir>/report; "
                              "results/... only when given).")
    report_from = flags.DEFINE_string("report_from", None,
                                      "Only rewrite the report from this saved JSON (to --out, "
                                      "default the JSON's directory).")
  extra = extra_flags() if extra_flags else {}
  check_override_keys(sys.argv)
  if not any(a.startswith("--report_from") for a in sys.argv):
    flags.mark_flags_as_required(["config", "workdir"])

  def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    if report_from is not None and report_from.value:
      with open(report_from.value) as f:
        write_report(json.load(f), out.value or os.path.dirname(report_from.value) or ".")
      return
    from s2jax import report, sharding
    # Before anything touches JAX (the launch log asks which process writes it).
    sharding.initialize_distributed(sharding.distributed_block(config.value))
    # Every launch of the script, failed ones included, in <workdir>/launches.jsonl.
    with report.launch(workdir.value, os.path.basename(sys.argv[0])):
      result = run(config.value, workdir.value, **{k: v.value for k, v in extra.items()})
    if jax.process_index() == 0:
      if out is not None:
        write_report(result, out.value or os.path.join(workdir.value, "report"))
      if summarize:
        summarize(result)

  app.run(main)


def ablation() -> None:
  """The ablation script: the config file (get_config(arg) with `name`, and
  points(config)) names the module s2jax.ablations.<name>, which has run_point(config,
  workdir, seed, arm) and write(config, workdir, out)."""
  from absl import app, flags, logging
  from ml_collections import config_flags
  from s2jax import ablations, report
  from s2jax.ablations import common
  from s2jax.config import check_override_keys
  config_flag = config_flags.DEFINE_config_file("config", None, "The ablation's config file.")
  workdir = flags.DEFINE_string("workdir", "workdirs/ablations",
                                "Root of every ablation's runs (the seeds' pipelines are shared).")
  out = flags.DEFINE_string("out", "", "Result path prefix (.md, .json, .png); default "
                            "<workdir>/<name>/report (results/... only when given).")
  point = flags.DEFINE_string("point", "", "Run only this point (seed<k>/<arm>), no report.")
  dry_run = flags.DEFINE_bool("dry_run", False, "Print one command per point and exit.")
  report_only = flags.DEFINE_bool("report_only", False, "Only rewrite the result section.")
  archive_dir = flags.DEFINE_string(
      "archive", "", "Before the report, save the workdir's outputs (no checkpoints) into "
      "this folder (e.g. results/ablations/runs) and write the report from it, so that "
      "points run in other sessions report together (s2jax.archive).")
  check_override_keys(sys.argv)
  flags.mark_flags_as_required(["config"])

  def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    config = config_flag.value
    module = ablations.get(config.name)
    path = config_flags.get_config_filename(flags.FLAGS["config"])
    spec = importlib.util.spec_from_file_location("_ablation_config", path.partition(":")[0])
    config_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(config_module)
    def write():
      source = workdir.value
      if archive_dir.value:
        from s2jax import archive
        saved = archive.save(workdir.value, archive_dir.value)
        print(f"archived {workdir.value} -> {archive_dir.value}: {len(saved['added'])} added, "
              f"{len(saved['replaced'])} replaced, {len(saved['too_large'])} too large",
              flush=True)
        source = archive_dir.value
      module.write(config, source, common.prepare_out(
          out.value or os.path.join(workdir.value, config.name, "report")))

    def loop():
      common.main_loop(sys.argv, config=config, points=config_module.points(config),
                       run_point=lambda seed, arm: module.run_point(config, workdir.value, seed,
                                                                    arm),
                       write=write,
                       point=point.value, dry_run=dry_run.value, report_only=report_only.value)
    if dry_run.value:
      return loop()
    # Every launch (a point, all points, or the report alone) is recorded where the
    # report's "runs behind these numbers" reads it.
    with report.launch(os.path.join(workdir.value, config.name), "ablation.py"):
      loop()

  app.run(main)
