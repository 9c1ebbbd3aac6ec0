"""SFT learning curves of the testbed options side by side: results/testbed.{md,json,png}
from the runs' workdirs, without computing anything (s2jax.reports.testbed).

  python experiments/report_testbed.py --workdir_root=workdirs/testbed --out=results/testbed \
      --pairs=cot:cot_calc,cot_calc:plan_calc
  python experiments/report_testbed.py --earlier=results/testbed.json \
      --runs=base_policy_continued=workdirs/base_policy --out=results/testbed
"""
import os
import sys

from absl import app, flags

from s2jax.reports import testbed

_ROOT = flags.DEFINE_string("workdir_root", "workdirs/testbed", "One SFT workdir per option.")
_RUNS = flags.DEFINE_list("runs", [], "Option names under the root (or workdir paths, or "
                          "name=path), in this order (default: every workdir under the root).")
_EARLIER = flags.DEFINE_string("earlier", "", "An earlier report's JSON: its runs come first, "
                               "for runs whose workdirs are gone (a run given in --runs "
                               "with the same name replaces its stored copy).")
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
  runs = []
  for n in names:
    name, _, path = n.rpartition("=")
    runs.append(testbed.load_run(path if "/" in path else os.path.join(_ROOT.value, path), name))
  if _EARLIER.value:
    live = {r["name"] for r in runs}
    runs = [r for r in testbed.load_stored(_EARLIER.value) if r["name"] not in live] + runs
  pairs = [tuple(p.split(":")) for p in _PAIRS.value]
  testbed.write_report(runs, _OUT.value, " ".join(["python"] + sys.argv), pairs)
  print(f"wrote {_OUT.value}.md/.json/.png")


if __name__ == "__main__":
  flags.mark_flag_as_required("out")
  app.run(main)
