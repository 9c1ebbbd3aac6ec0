"""SFT learning curves of the testbed options side by side: results/testbed.{md,json,png}
from the runs' workdirs, without computing anything (s2jax.reports.testbed).

  python experiments/report_testbed.py --workdir_root=workdirs/testbed --out=results/testbed
"""
import os
import sys

from absl import app, flags

from s2jax.reports import testbed

_ROOT = flags.DEFINE_string("workdir_root", "workdirs/testbed", "One SFT workdir per option.")
_RUNS = flags.DEFINE_list("runs", [], "Option names under the root, in this order "
                          "(default: every workdir with a config.json).")
_OUT = flags.DEFINE_string("out", "results/testbed", "Results path prefix.")


def main(argv):
  del argv
  names = _RUNS.value or sorted(
      d for d in os.listdir(_ROOT.value)
      if os.path.exists(os.path.join(_ROOT.value, d, "config.json")))
  if not names:
    sys.exit(f"error: no runs under {_ROOT.value}")
  runs = [testbed.load_run(os.path.join(_ROOT.value, n)) for n in names]
  testbed.write_report(runs, _OUT.value, " ".join(["python"] + sys.argv))
  print(f"wrote {_OUT.value}.md/.json/.png")


if __name__ == "__main__":
  app.run(main)
