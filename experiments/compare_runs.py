"""Whether two runs' metrics.json give the same numbers (s2jax.parity): every numeric leaf
compared, provenance and wall time left out. Writes <out>.json and <out>.md.

  python experiments/compare_runs.py --before=runs/a/metrics.json --after=runs/b/metrics.json \
      --out=results/refactor/parity
"""
import argparse
import json
import os

from s2jax import parity, report


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--before", required=True)
  ap.add_argument("--after", required=True)
  ap.add_argument("--out", required=True)
  ap.add_argument("--rtol", type=float, default=1e-6)
  args = ap.parse_args()
  with open(args.before) as f:
    before = json.load(f)
  with open(args.after) as f:
    after = json.load(f)
  result = parity.compare(before, after, rtol=args.rtol)
  verdict = ("identical" if not result["differences"] and result["close"] == 0 else
             "equal to float tolerance" if not result["differences"] else "different")
  out = {"run_info": report.run_info(), "before": args.before, "after": args.after,
         "before_run_info": before.get("run_info"), "after_run_info": after.get("run_info"),
         "before_seconds": before.get("seconds"), "after_seconds": after.get("seconds"),
         "rtol": args.rtol, "verdict": verdict, **result}
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out + ".json", "w") as f:
    json.dump(out, f, indent=2, default=list)
  rows = [[p, repr(a), repr(b)] for p, a, b in result["differences"][:40]]
  md = [f"# {os.path.basename(args.out)}: {verdict}", "",
        "Machine-written by `experiments/compare_runs.py`.", "",
        f"- command: `{out['run_info']['command']}`, commit `{out['run_info']['commit']}`",
        f"- before: `{args.before}` (run `{(before.get('run_info') or {}).get('command')}` at "
        f"commit `{(before.get('run_info') or {}).get('commit')}`)",
        f"- after: `{args.after}` (run `{(after.get('run_info') or {}).get('command')}` at "
        f"commit `{(after.get('run_info') or {}).get('commit')}`)",
        f"- numbers compared: {result['numbers']}; identical {result['identical']}, within "
        f"rtol {args.rtol}: {result['close']}, different: {len(result['differences'])}",
        f"- keys in one run only: {result['missing'] or 'none'}", ""]
  if rows:
    md += [report.markdown_table(["path", "before", "after"], rows), ""]
  with open(args.out + ".md", "w") as f:
    f.write("\n".join(md))
  print(f"{verdict}: {result['numbers']} numbers, {len(result['differences'])} differ")


if __name__ == "__main__":
  main()
