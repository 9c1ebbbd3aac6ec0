"""Generation budgets against the references they must hold. A budget shorter than the
longest reference of a split it generates for measures truncation, not reasoning, so a
config is checked before its numbers are trusted (tests/test_budgets.py)."""
from __future__ import annotations

from s2jax import tasks
from s2jax.data import formats


def longest_of(problems, task, fmt: str, tokenizer) -> dict:
  """Token counts of the longest reference solution (in format `fmt`, with its eos), of
  the longest single step, of the most steps and of the longest question over problems."""
  longest = {"solution": 0, "step": 0, "steps": 0, "question": 0}
  for p in problems:
    text = formats.solution_text(p.solution, fmt, tokenizer,
                                 plan=task.plan(p) if fmt == "plan" else "")
    steps = task.split_steps(text)[0]
    longest["solution"] = max(longest["solution"], len(tokenizer.encode(text)) + 1)
    longest["step"] = max([longest["step"]] + [len(tokenizer.encode(s)) + 1 for s in steps])
    longest["steps"] = max(longest["steps"], len(steps))
    longest["question"] = max(longest["question"], len(tokenizer.encode(p.question)))
  return longest


def longest_reference(config, split: str, n: int, tokenizer) -> dict:
  """longest_of the first n problems of a split, in the config's training format."""
  task = tasks.for_config(config)
  return longest_of(task.generate_split(config, split, n), task,
                    config.data.get("format", "cot"), tokenizer)


def truncation_error(key: str, budget: int, where: str, longest: dict, margin: int):
  """The message for a budget that cannot hold the longest reference plus margin, or None."""
  if budget < longest["solution"] + margin:
    return (f"{key}={budget} truncates {where}: its longest reference needs "
            f"{longest['solution']} tokens (+{margin} margin)")
  return None


def pipeline_budgets(config) -> list[tuple[str, int, tuple]]:
  """(config key, tokens, splits it generates for) of every whole-solution generation in
  a pipeline config."""
  splits = tuple(tasks.for_config(config.sft).eval_split_names(config.sft))
  search = tuple(config.search.splits) or splits
  return [("sft.eval.max_new_tokens", config.sft.eval.max_new_tokens, splits),
          ("verifier.samples.max_new_tokens", config.verifier.samples.max_new_tokens,
           ("train",) + splits),
          ("distill.samples.max_new_tokens", config.distill.samples.max_new_tokens, ("train",)),
          ("distill.eval.max_new_tokens", config.distill.eval.max_new_tokens, splits),
          ("ppo.rollout.max_new_tokens", config.ppo.rollout.max_new_tokens, ("train",)),
          ("ppo.eval.max_new_tokens", config.ppo.eval.max_new_tokens, splits),
          ("search.sampling.max_new_tokens", config.search.sampling.max_new_tokens, search)]


def check_pipeline(config, tokenizer, n: int = 0, margin: int = 8) -> list[str]:
  """Every budget of a pipeline config that cannot hold the longest reference of a split
  it serves plus `margin` tokens (n problems per split; 0: as many as the config
  evaluates), and beam-search limits that cannot hold the longest step or chain."""
  sft = config.sft
  n = n or sft.data.num_eval
  longest = {s: longest_reference(sft, s, n, tokenizer)
             for s in ("train",) + tuple(tasks.for_config(sft).eval_split_names(sft))}
  errors = []
  for key, budget, splits in pipeline_budgets(config):
    for split in splits:
      error = truncation_error(key, budget, split, longest[split], margin)
      if error:
        errors.append(error)
  b = config.search.beam
  if b.budgets:
    for split in tuple(config.search.splits) or tuple(longest)[1:]:
      if b.max_step_tokens < longest[split]["step"]:
        errors.append(f"search.beam.max_step_tokens={b.max_step_tokens} cuts a step of "
                      f"{split} ({longest[split]['step']} tokens)")
      if b.max_depth < longest[split]["steps"]:
        errors.append(f"search.beam.max_depth={b.max_depth} is below the {split} chains' "
                      f"{longest[split]['steps']} steps")
  return errors
