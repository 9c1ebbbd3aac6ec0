"""Problems of either task behind one interface: `from_json(record)` and `check(problem,
text)`.

A synthetic record (with `meta`) becomes an `arith.Problem`, judged by the exact step
checker. Any other GSM8K-format record becomes a `RealProblem`: its steps are judged by
their calculator annotations (weak labels) and its answer by `gsm8k.extract_answer`, so
every stage (verifier labels, self-distillation filters, RL rewards, evaluation) runs on
GSM8K through the same code. Real problems have no corrupter: stages that plant wrong
steps say so when asked to.
"""
from __future__ import annotations

import dataclasses

from s2jax.tasks import arith


@dataclasses.dataclass
class RealProblem:
  question: str
  solution: str    # the reference solution
  answer: float    # its final answer
  num_steps: int   # reasoning lines of the reference

  def to_json(self) -> dict:
    return {"question": self.question, "answer": self.solution}


def from_json(rec: dict):
  if "meta" in rec:
    return arith.Problem.from_json(rec)
  from s2jax.data import gsm8k
  answer = gsm8k.reference_answer(rec)
  if answer is None:
    raise ValueError(f"record has no '#### N' final answer: {rec['answer'][-80:]!r}")
  return RealProblem(rec["question"], rec["answer"], answer,
                     len(arith.split_steps(rec["answer"])[0]))


def check(problem, text: str) -> arith.SolutionVerdict:
  if isinstance(problem, arith.Problem):
    return arith.check_solution(problem, text)
  from s2jax.data import gsm8k
  verdict = arith.check_annotations(text)
  verdict.answer = gsm8k.extract_answer(text)
  verdict.answer_correct = gsm8k.answers_match(verdict.answer, problem.answer)
  return verdict


def corrupt(problem, rng):
  if not isinstance(problem, arith.Problem):
    raise ValueError("GSM8K problems have no corrupter (it needs the synthetic task's "
                     "generator): set labels.corrupted_per_problem=0 and recovery.fraction=0")
  return arith.corrupt(problem, rng)
