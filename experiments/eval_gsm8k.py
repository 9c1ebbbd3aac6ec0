"""A pretrained checkpoint (or an s2jax policy workdir) on the GSM8K test split, resumable
chunk by chunk, with a 95% Wilson interval (s2jax.stages.eval_gsm8k).

  python experiments/eval_gsm8k.py --config=configs/gsm8k_smollm2.py --workdir=runs/eval
  python experiments/eval_gsm8k.py --config=configs/gsm8k_smollm2.py:fewshot \
      --workdir=runs/eval_5shot
  python experiments/eval_gsm8k.py --config=... --policy_workdir=runs/gsm8k_sft --workdir=...
"""
from absl import flags

from s2jax import cli
from s2jax.stages import eval_gsm8k


def extra_flags():
  return {"policy_workdir": flags.DEFINE_string(
              "policy_workdir", "", "Evaluate this s2jax policy workdir instead of "
              "config.pretrained."),
          "limit": flags.DEFINE_integer("limit", 0, "Only the first N test problems (0: all).")}


def summarize(s):
  print(f"GSM8K test: {s['correct']}/{s['n']} = {s['accuracy']:.4f} "
        f"(95% Wilson [{s['wilson95'][0]:.4f}, {s['wilson95'][1]:.4f}]), prompt "
        f"{s['prompt']['kind']}, model {s['model']}")


if __name__ == "__main__":
  cli.job(eval_gsm8k.run, summarize=summarize, extra_flags=extra_flags,
          workdir_help="Where outputs.jsonl and summary.json go.")
