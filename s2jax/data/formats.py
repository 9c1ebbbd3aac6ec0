"""What the policy is trained to write before its answer (the filler-token ablation).

  cot     the reference chain of thought, one step per line, then "#### N"
  plan    a plan line first (`Plan: Zoe, Dev, Flo.`: the asked entity back to a given count,
          one name per hop, so each name is a one-hop lookup), then the chain of thought;
          the plan line is a step like any other (checked, labelled, scored)
  direct  only "#### N"
  filler  as many meaningless filler tokens as the chain of thought has, then "#### N"
          (Pfau et al. 2024, "Let's think dot by dot"): the same extra positions to
          compute in, with none of the intermediate results written down

Only the training targets change; prompts, evaluation and answer grading stay the same.
"""
from __future__ import annotations

FORMATS = ("cot", "plan", "direct", "filler")
FILLER = "."  # one token per character: the synthetic tokenizer has no ".." piece


def _final_line(solution: str) -> tuple[str, str]:
  lines = solution.rstrip("\n").split("\n")
  if not lines[-1].lstrip().startswith("####"):
    raise ValueError(f"solution has no '#### answer' final line: {solution!r}")
  return "\n".join(lines[:-1]), lines[-1]


def solution_text(solution: str, fmt: str, tokenizer=None, plan: str = "") -> str:
  """The training target for a reference `solution` in format `fmt`. `plan` needs the
  task's plan line; `filler` needs the tokenizer: it matches the chain of thought's token
  count exactly where the tokenizer allows (checked in tests/test_ablations.py)."""
  if fmt not in FORMATS:
    raise ValueError(f"data.format={fmt!r} must be one of {FORMATS}")
  if fmt == "cot":
    return solution
  if fmt == "plan":
    if not plan:
      raise ValueError("data.format='plan' needs the task's plan line")
    return plan + "\n" + solution
  steps, final = _final_line(solution)
  if fmt == "direct" or not steps:
    return final
  if tokenizer is None:
    raise ValueError("data.format='filler' needs the tokenizer to count the chain's tokens")
  target = len(tokenizer.encode(solution))
  n = max(1, target - len(tokenizer.encode(final)) - 1)
  for _ in range(4):  # a couple of corrections for how the line boundary tokenizes
    text = FILLER * n + "\n" + final
    diff = target - len(tokenizer.encode(text))
    if diff == 0 or n + diff < 1:
      break
    n += diff
  return FILLER * n + "\n" + final
