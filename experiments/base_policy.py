"""Train the shipped base policy and export it into the package (s2jax.base_policy).

  python experiments/base_policy.py --config=configs/base_policy.py --workdir=workdirs/base_policy

Runs the SFT stage (resumable like any SFT run), then writes the final weights, tokenizer
and policy.json (hash, accuracy on 100 test problems, command, commit, config, launches
with wall times) to --export_to, by default s2jax/assets/arith_base, which the pipeline's
default config starts from (`sft.init_from`).
"""
from absl import flags

from s2jax import base_policy, cli
from s2jax.stages import sft


def run(config, workdir, export_to):
  result = sft.run(config, workdir)
  return {"eval": result["eval"], "export": base_policy.export(workdir, export_to),
          "export_to": export_to}


def summarize(result):
  for name, s in result["eval"].items():
    print(f"{name:>20}: accuracy {s['accuracy']:.3f}  fully-valid chains {s['fully_valid']:.3f}"
          f"  (n={s['n']})")
  meta = result["export"]
  print(f"exported to {result['export_to']}: sha256 {meta['sha256'][:16]}…, "
        f"check accuracy {meta['check']['accuracy']:.3f} on {meta['check']['n']} problems")


def extra_flags():
  return {"export_to": flags.DEFINE_string(
      "export_to", base_policy.directory("arith_base"), "Where the policy is written.")}


if __name__ == "__main__":
  cli.job(run, summarize=summarize, extra_flags=extra_flags)
