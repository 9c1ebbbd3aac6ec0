"""The main job over seeds: the testbed's targets per seed, and each later stage against SFT
pooled over seeds (s2jax.reports.seeds), from each seed's metrics.json.

  python experiments/report_seeds.py --runs=workdirs/pipeline/seed0,workdirs/pipeline/seed1,\
workdirs/pipeline/seed2 --out=results/pipeline/seeds
"""
import json
import os
import sys

from absl import app, flags

from s2jax.reports import seeds

_RUNS = flags.DEFINE_list("runs", [], "Pipeline workdirs (or directories holding their "
                          "metrics.json), one per seed.")
_OUT = flags.DEFINE_string("out", None, "Results path prefix (.md, .json, .png).")


def main(argv):
  del argv
  if not _RUNS.value:
    sys.exit("error: give --runs")
  runs = {}
  for d in _RUNS.value:
    with open(os.path.join(d, "metrics.json")) as f:
      runs[os.path.basename(os.path.normpath(d))] = json.load(f)
  seeds.write(runs, _OUT.value, " ".join(["python"] + sys.argv))
  print(open(_OUT.value + ".md").read())


if __name__ == "__main__":
  flags.mark_flag_as_required("out")
  app.run(main)
