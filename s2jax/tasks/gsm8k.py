"""GSM8K behind the Task interface: steps are judged by their calculator annotations
`<<expr=value>>` (weak labels), the answer by `data.gsm8k.extract_answer` against the
reference's `#### N`. GSM8K has no corrupter (it needs the synthetic task's generator)."""
from __future__ import annotations

import dataclasses
from typing import Optional

from s2jax.data import gsm8k as gsm8k_data
from s2jax.tasks import arith
from s2jax.tasks.base import Task, register


@dataclasses.dataclass
class RealProblem:
  question: str
  solution: str    # the reference solution
  answer: float    # its final answer
  num_steps: int   # reasoning lines of the reference

  def to_json(self) -> dict:
    return {"question": self.question, "answer": self.solution}


@register("gsm8k")
class Gsm8kTask(Task):
  checker = "annotation"

  def from_json(self, record: dict) -> RealProblem:
    answer = gsm8k_data.reference_answer(record)
    if answer is None:
      raise ValueError(f"record has no '#### N' final answer: {record['answer'][-80:]!r}")
    return RealProblem(record["question"], record["answer"], answer,
                       len(arith.split_steps(record["answer"])[0]))

  def check(self, problem, text: str) -> arith.SolutionVerdict:
    verdict = arith.check_annotations(text)
    verdict.answer = gsm8k_data.extract_answer(text)
    verdict.answer_correct = gsm8k_data.answers_match(verdict.answer, problem.answer)
    return verdict

  def parse_answer(self, text: str) -> Optional[float]:
    return gsm8k_data.extract_answer(text)

  def generate_split(self, config, name: str, n: int) -> list:
    """The first n problems of the official split (0: all of it)."""
    data = config.data
    recs = gsm8k_data.load(name, source=data.source, data_dir=data.get("dir", ""), limit=n)
    return [self.from_json(r) for r in recs]

  def eval_split_names(self, config) -> list[str]:
    return ["test"]  # GSM8K has one evaluation split
