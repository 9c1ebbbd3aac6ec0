"""The synthetic task (s2jax/tasks/arith.py) behind the Task interface: exact step
checking, generated splits, a corrupter."""
from __future__ import annotations

from typing import Optional

import numpy as np

from s2jax.tasks import arith, splits
from s2jax.tasks.base import Task, register


@register("arith")
class ArithTask(Task):
  can_corrupt = True

  def from_json(self, record: dict) -> arith.Problem:
    if "meta" not in record:
      raise ValueError("task 'arith' needs generated records (with 'meta'); this one has "
                       f"keys {sorted(record)}: question {record.get('question', '')[:60]!r}")
    return arith.Problem.from_json(record)

  def check(self, problem, text: str) -> arith.SolutionVerdict:
    return arith.check_solution(problem, text)

  def parse_answer(self, text: str) -> Optional[float]:
    return arith.parse_final_answer(text)

  def generate_split(self, config, name: str, n: int) -> list:
    return splits.build_split(config, name, n)

  def plan(self, problem) -> str:
    return arith.plan_line(problem)

  def corrupt(self, problem, rng: np.random.Generator, plan: bool = False,
              kinds=None) -> tuple[list[str], int, str]:
    if plan:
      return arith.corrupt_planned(problem, rng, kinds)
    return arith.corrupt(problem, rng, [k for k in kinds if k != "plan"] if kinds
                         else arith.CORRUPTIONS)
