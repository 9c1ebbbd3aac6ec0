"""SFT learning curves of the testbed options side by side: results/testbed.{md,json,png}
from the runs' workdirs, without computing anything (s2jax.reports.testbed).

  python experiments/report_testbed.py --workdir_root=workdirs/testbed --out=results/testbed \
      --pairs=cot:cot_calc,cot_calc:plan_calc
"""
import os
import sys

from absl import app, flags

from s2jax.reports import testbed

_ROOT = flags.DEFINE_string("workdir_root", "workdirs/testbed", "One SFT workdir per option.")
_RUNS = flags.DEFINE_list("runs", [], "Option names under the root (or workdir paths), in "
                          "this order (default: every workdir under the root).")
_PAIRS = flags.DEFINE_list("pairs", [], "a:b option names compared problem by problem "
                           "(b minus a) on every split's final evaluation.")
_OUT = flags.DEFINE_string("out", None, "Results path prefix (.md, .json, .png).")


def main(argv):
  del argv
  names = _RUNS.value or sorted(
      d for d in os.listdir(_ROOT.value)
      if os.path.exists(os.path.join(_ROOT.value, d, "config.json")))
  if not names:
    sys.exit(f"error: no runs under {_ROOT.value}")
  # A name with a slash is a workdir path (the base policy's run, say).
  runs = [testbed.load_run(n if "/" in n else os.path.join(_ROOT.value, n)) for n in names]
  pairs = [tuple(p.split(":")) for p in _PAIRS.value]
  testbed.write_report(runs, _OUT.value, " ".join(["python"] + sys.argv), pairs)
  print(f"wrote {_OUT.value}.md/.json/.png")


if __name__ == "__main__":
  flags.mark_flag_as_required("out")
  app.run(main)
