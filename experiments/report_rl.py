"""Self-distillation and RL runs side by side: results/<out>.{md,json,png} from their
workdirs' saved logs, without computing anything (s2jax.reports.rl).

  python experiments/report_rl.py --distill=workdirs/distill/prm_topk,workdirs/distill/correct \
      --rl=workdirs/ppo/ppo_step,workdirs/ppo/ppo_outcome --out=results/rl_arith
"""
import sys

from absl import app, flags

from s2jax.reports import rl as report_rl

_DISTILL = flags.DEFINE_list("distill", [], "self_distill.py workdirs (one per filter).")
_RL = flags.DEFINE_list("rl", [], "ppo.py workdirs.")
_OUT = flags.DEFINE_string("out", None, "Results path prefix (.md, .json, .png).")


def main(argv):
  del argv
  distills = [report_rl.load_distill(w) for w in _DISTILL.value if w]
  rls = [report_rl.load_rl(w) for w in _RL.value if w]
  if not distills and not rls:
    sys.exit("error: give --distill and/or --rl workdirs")
  report_rl.write_report(distills, rls, _OUT.value, " ".join(["python"] + sys.argv))
  print(f"wrote {_OUT.value}.md/.json/.png")


if __name__ == "__main__":
  flags.mark_flag_as_required("out")
  app.run(main)
