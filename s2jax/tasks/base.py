"""The Task interface every stage works through, and the registry that picks a task by
name (`task.name` in a config).

A task owns its records and its judgement: how a GSM8K-format record becomes a problem,
how a solution text splits into steps and a final answer, how each step and the answer
are checked, how splits are made, and (where it can) how a reference step is made wrong.
Search, labels, distillation, RL and evaluation call only these methods, so a new task is
one subclass plus `register`.
"""
from __future__ import annotations

import abc
from typing import Any, Optional, Sequence

import numpy as np

from s2jax.registry import Registry


class Task(abc.ABC):
  name: str = ""
  # Whether `corrupt` works: stages that plant wrong steps (corrupted references for
  # verifier labels, recovery prompts in RL) check it before they start.
  can_corrupt: bool = False
  # How `check` judges steps, recorded with every graded output: "exact" (a checker that
  # knows the truth of each step) or "annotation" (calculator annotations, weak labels).
  checker: str = "exact"

  @abc.abstractmethod
  def from_json(self, record: dict) -> Any:
    """A problem from a GSM8K-format record ({"question", "answer", ...})."""

  def to_json(self, problem) -> dict:
    return problem.to_json()

  @abc.abstractmethod
  def check(self, problem, text: str):
    """A `SolutionVerdict`: a verdict per step and for the final answer. Never raises on
    malformed text."""

  def split_steps(self, text: str) -> tuple[list[str], Optional[str]]:
    """(reasoning steps, the final-answer line or None): the GSM8K format every task's
    records use, one step a line and `#### N` last."""
    from s2jax.tasks import arith
    return arith.split_steps(text)

  @abc.abstractmethod
  def parse_answer(self, text: str) -> Optional[float]:
    """The final answer a solution text gives, None when it gives none."""

  def is_final_line(self, line: str) -> bool:
    """Whether a line is the final-answer line (generation of steps ends there)."""
    from s2jax.tasks import arith
    return arith.is_final_line(line)

  @abc.abstractmethod
  def generate_split(self, config, name: str, n: int) -> list:
    """Problems of the named split (`train`, `test`, or a key of `config.splits`)."""

  def eval_split_names(self, config) -> list[str]:
    return ["test"] + list(config.get("splits", {}).keys())

  def corrupt(self, problem, rng: np.random.Generator, plan: bool = False,
              kinds=None) -> tuple[list[str], int, str]:
    """(the reference's steps up to a step made wrong, its index, the kind of error);
    `plan`: the planned format, whose plan line is a step that can be the wrong one;
    `kinds`: the kinds of error to draw from (None: the task's default mix)."""
    raise ValueError(f"task {self.name!r} has no corrupter: set "
                     "labels.corrupted_per_problem=0 and recovery.fraction=0")

  def plan(self, problem) -> str:
    """The plan line of the planned chain of thought (`data.format=plan`)."""
    raise ValueError(f"task {self.name!r} has no plan line: use data.format='cot'")

  def answers(self, texts: Sequence[str]) -> list[Optional[float]]:
    return [self.parse_answer(t) for t in texts]


_REGISTRY = Registry("task")
names = _REGISTRY.names


def register(name: str):
  """Class decorator: `@register("arith")` makes the task available as task.name=arith."""
  def wrap(cls):
    cls.name = name
    return _REGISTRY.register(name)(cls)
  return wrap


def get(name: str) -> Task:
  return _REGISTRY.get(name)()


def name_of(config) -> str:
  """A config's task: `task.name`; a config written before tasks had names is the
  synthetic task unless its data comes from GSM8K files."""
  task = config.get("task")
  if task is not None and task.get("name"):
    return task.name
  return "gsm8k" if config.get("data", {}).get("source", "synthetic") in ("jsonl", "tfds") \
      else "arith"


def for_config(config) -> Task:
  return get(name_of(config))
