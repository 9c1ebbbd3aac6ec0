"""Verifiable multi-step arithmetic word problems in GSM8K solution format.

A problem is a chain of quantities: one entity's count is given, each later entity's
count is derived from earlier ones ("3 more than", "twice as many", "as many as A and B
combined", ...). The question asks for the last entity of the chain, so every derived
quantity is needed and the number of reasoning steps is exactly the chain length.
Distractor entities (given counts, or counts derived from chain members) appear in the
question but never in the solution.

Solutions use one step per line with a calculator annotation and a final answer line:

    Bob has 12+3 = <<12+3=15>>15 apples.
    Cara has 2*15 = <<2*15=30>>30 apples.
    #### 30

Because the generator knows every entity's true count, `check_solution` can label any
candidate solution text step by step, exactly.
"""
from __future__ import annotations

import ast
import dataclasses
import math
import operator
import re
from fractions import Fraction
from typing import Callable, Optional, Sequence

import numpy as np

NAMES = (
    "Ada", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jade", "Kai", "Lena",
    "Milo", "Nia", "Omar", "Pia", "Quin", "Rosa", "Sam", "Tara", "Uma", "Vic", "Wes", "Xena",
    "Yuri", "Zoe", "Abe", "Bea", "Cole", "Dina", "Emil", "Flo",
)
ITEMS = ("apples", "marbles", "stickers", "coins", "books", "pencils", "cookies", "cards",
         "shells", "stamps", "beads", "toys")
OPS = ("add", "sub", "mul", "div", "sum")
_MUL_WORDS = {2: "twice", 3: "three times", 4: "four times"}
_DIV_WORDS = {2: "half", 3: "a third of", 4: "a quarter of"}

# Surface forms per template family. Families are disjoint phrasings of the same
# relations, so a model trained on some families can be tested on an unseen one.
TEMPLATES = (
    {  # family 0
        "given": "{a} has {n} {item}.",
        "add": "{a} has {n} more {item} than {b}.",
        "sub": "{a} has {n} fewer {item} than {b}.",
        "mul": "{a} has {w} as many {item} as {b}.",
        "div": "{a} has {w} as many {item} as {b}.",
        "sum": "{a} has as many {item} as {b} and {c} combined.",
        "question": "How many {item} does {a} have?",
    },
    {  # family 1
        "given": "There are {n} {item} in {a}'s box.",
        "add": "{a}'s box holds {n} {item} more than {b}'s box.",
        "sub": "{a}'s box holds {n} {item} less than {b}'s box.",
        "mul": "{a}'s box holds {w} the number of {item} in {b}'s box.",
        "div": "{a}'s box holds {w} the number of {item} in {b}'s box.",
        "sum": "{a}'s box holds the {item} of {b}'s box and {c}'s box together.",
        "question": "How many {item} are in {a}'s box?",
    },
    {  # family 2
        "given": "{a} collected {n} {item} last week.",
        "add": "{a} collected {n} {item} beyond what {b} collected.",
        "sub": "{a} collected {n} {item} short of what {b} collected.",
        "mul": "{a} collected {w} what {b} collected.",
        "div": "{a} collected {w} what {b} collected.",
        "sum": "{a} collected exactly what {b} and {c} collected between them.",
        "question": "What is the number of {item} that {a} collected?",
    },
)
NUM_FAMILIES = len(TEMPLATES)


@dataclasses.dataclass(frozen=True)
class TaskConfig:
  min_steps: int = 2
  max_steps: int = 4
  min_distractors: int = 0
  max_distractors: int = 2
  ops: tuple = OPS
  max_value: int = 100
  families: tuple = (0, 1)

  def __post_init__(self):
    def bad(key, why):
      raise ValueError(f"task config: {key}={getattr(self, key)!r} {why}")
    if not 1 <= self.min_steps <= self.max_steps:
      bad("min_steps", f"must satisfy 1 <= min_steps <= max_steps={self.max_steps}")
    if not 0 <= self.min_distractors <= self.max_distractors:
      bad("min_distractors", f"must satisfy 0 <= min_distractors <= max_distractors")
    if self.max_steps + 1 + self.max_distractors > len(NAMES):
      bad("max_steps", f"+ max_distractors + 1 exceeds the {len(NAMES)} available names")
    unknown = set(self.ops) - set(OPS)
    if not self.ops or unknown:
      bad("ops", f"must be a non-empty subset of {OPS}")
    if self.max_value < 20:
      bad("max_value", "must be at least 20")
    if not self.families or any(f not in range(NUM_FAMILIES) for f in self.families):
      bad("families", f"must be a non-empty subset of {tuple(range(NUM_FAMILIES))}")

  @classmethod
  def from_dict(cls, d) -> "TaskConfig":
    d = dict(d)
    unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
      raise ValueError(f"task config: unknown key(s) {sorted(unknown)}")
    for key in ("ops", "families"):
      if key in d:
        d[key] = tuple(d[key])
    return cls(**d)


@dataclasses.dataclass
class Problem:
  question: str
  solution: str             # reference solution, GSM8K format, ends with "#### answer"
  answer: int
  values: dict              # entity name -> true count (chain and distractors)
  grounded: list            # numbers a solution may take from the question
  num_steps: int
  num_distractors: int
  family: int
  item: str
  # entity name -> {"op": given|add|sub|mul|div|sum, "parents": [names], "const": n|None}:
  # how the question defines each count, so the checker can demand that relation. None for
  # records written before relations were stored (they get the lenient, value-only check).
  relations: Optional[dict] = None

  def to_json(self) -> dict:
    """GSM8K-format record; `meta` lets the exact checker rebuild the problem."""
    meta = {"values": self.values, "grounded": self.grounded, "num_steps": self.num_steps,
            "num_distractors": self.num_distractors, "family": self.family, "item": self.item}
    if self.relations is not None:
      meta["relations"] = self.relations
    return {"question": self.question, "answer": self.solution, "meta": meta}

  @classmethod
  def from_json(cls, rec: dict) -> "Problem":
    m = rec["meta"]
    return cls(question=rec["question"], solution=rec["answer"],
               answer=parse_final_answer(rec["answer"]), values=dict(m["values"]),
               grounded=list(m["grounded"]), num_steps=m["num_steps"],
               num_distractors=m["num_distractors"], family=m["family"], item=m["item"],
               relations=m.get("relations"))


def _step_text(name: str, expr: str, value: int, item: str) -> str:
  return f"{name} has {expr} = <<{expr}={value}>>{value} {item}."


def _derive(rng, op, value_of, parents, max_value):
  """Try to derive a new count by `op` from the parents; None if it does not fit."""
  a = value_of[parents[0]]
  if op == "add":
    n = int(rng.integers(1, 20))
    v, expr, const = a + n, f"{a}+{n}", n
  elif op == "sub":
    if a < 3:
      return None
    n = int(rng.integers(1, min(a - 1, 20)))
    v, expr, const = a - n, f"{a}-{n}", n
  elif op == "mul":
    n = int(rng.choice(list(_MUL_WORDS)))
    v, expr, const = a * n, f"{n}*{a}", n
  elif op == "div":
    divisors = [n for n in _DIV_WORDS if a % n == 0 and a // n >= 1]
    if not divisors:
      return None
    n = int(rng.choice(divisors))
    v, expr, const = a // n, f"{a}/{n}", n
  else:  # sum of two
    b = value_of[parents[1]]
    v, expr, const = a + b, f"{a}+{b}", None
  if not 1 <= v <= max_value:
    return None
  return v, expr, const


def _relation(family, op, name, parents, const, item):
  t = TEMPLATES[family]
  b = parents[0]
  if op in ("add", "sub"):
    return t[op].format(a=name, b=b, n=const, item=item)
  if op == "mul":
    return t[op].format(a=name, b=b, w=_MUL_WORDS[const], item=item)
  if op == "div":
    return t[op].format(a=name, b=b, w=_DIV_WORDS[const], item=item)
  return t[op].format(a=name, b=b, c=parents[1], item=item)


def generate(cfg: TaskConfig, rng: np.random.Generator) -> Problem:
  """One problem. Deterministic given the generator state."""
  for _ in range(1000):
    p = _try_generate(cfg, rng)
    if p is not None:
      return p
  raise RuntimeError(f"could not generate a problem for {cfg}; widen max_value or ops")


def _try_generate(cfg: TaskConfig, rng: np.random.Generator) -> Optional[Problem]:
  n_steps = int(rng.integers(cfg.min_steps, cfg.max_steps + 1))
  n_distract = int(rng.integers(cfg.min_distractors, cfg.max_distractors + 1))
  family = int(rng.choice(cfg.families))
  item = str(rng.choice(ITEMS))
  names = [str(x) for x in rng.permutation(NAMES)[: n_steps + 1 + n_distract]]
  chain, extra = names[: n_steps + 1], names[n_steps + 1:]
  value_of = {chain[0]: int(rng.integers(5, cfg.max_value // 2 + 1))}
  relations = {chain[0]: _rel("given", [], value_of[chain[0]])}
  grounded = {value_of[chain[0]]}
  sentences = [(0, TEMPLATES[family]["given"].format(a=chain[0], n=value_of[chain[0]], item=item))]
  steps = []
  for i in range(1, n_steps + 1):
    ops = [o for o in cfg.ops if o != "sum" or i >= 2]
    for _ in range(50):
      op = str(rng.choice(ops))
      parents = [chain[i - 1]]
      if op == "sum":
        parents.append(chain[int(rng.integers(0, i - 1))])
      got = _derive(rng, op, value_of, parents, cfg.max_value)
      if got is not None:
        break
    else:
      return None
    v, expr, const = got
    value_of[chain[i]] = v
    relations[chain[i]] = _rel(op, parents, const)
    if const is not None:
      grounded.add(const)
    sentences.append((i, _relation(family, op, chain[i], parents, const, item)))
    steps.append(_step_text(chain[i], expr, v, item))
  # Distractors: a given count, or a count derived from a chain member.
  for name in extra:
    if rng.random() < 0.5:
      v = int(rng.integers(5, cfg.max_value // 2 + 1))
      value_of[name] = v
      relations[name] = _rel("given", [], v)
      grounded.add(v)
      pos = int(rng.integers(0, len(sentences) + 1))
      sentences.insert(pos, (-1, TEMPLATES[family]["given"].format(a=name, n=v, item=item)))
    else:
      anchor_idx = int(rng.integers(0, n_steps + 1))
      anchor = chain[anchor_idx]
      op = str(rng.choice([o for o in cfg.ops if o != "sum"] or ["add"]))
      got = _derive(rng, op, value_of, [anchor], cfg.max_value)
      if got is None:
        op, got = "add", _derive(rng, "add", value_of, [anchor], 10 ** 9)
      v, _, const = got
      value_of[name] = v
      relations[name] = _rel(op, [anchor], const)
      if const is not None:
        grounded.add(const)
      # After the anchor's own sentence, so the question reads in order.
      anchor_pos = next(k for k, (idx, _) in enumerate(sentences) if idx == anchor_idx)
      pos = int(rng.integers(anchor_pos + 1, len(sentences) + 1))
      sentences.insert(pos, (-1, _relation(family, op, name, [anchor], const, item)))
  question = " ".join(s for _, s in sentences) + " " + TEMPLATES[family]["question"].format(
      a=chain[-1], item=item)
  answer = value_of[chain[-1]]
  solution = "\n".join(steps + [f"#### {answer}"])
  return Problem(question=question, solution=solution, answer=answer, values=value_of,
                 grounded=sorted(grounded), num_steps=n_steps, num_distractors=n_distract,
                 family=family, item=item, relations=relations)


def _rel(op: str, parents: list, const) -> dict:
  return {"op": op, "parents": list(parents), "const": None if const is None else int(const)}


def generate_split(cfg: TaskConfig, n: int, seed: int) -> list[Problem]:
  rng = np.random.default_rng(seed)
  return [generate(cfg, rng) for _ in range(n)]


# ----------------------------------------------------------------------------- checking

_ANNOT = re.compile(r"<<([^<>=]*)=([^<>]*)>>")
_FINAL = re.compile(r"^\s*####\s*(.*)$")
_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv}


def safe_eval(expr: str) -> Optional[float]:
  """Evaluate + - * / over numbers and parentheses; None for anything else."""
  v = exact_eval(expr)
  try:
    v = None if v is None else float(v)
  except OverflowError:
    return None
  return v if v is not None and math.isfinite(v) else None


def exact_eval(expr: str) -> Optional[Fraction]:
  """`safe_eval` in exact rational arithmetic: integers stay exact however large, and a
  decimal is the number it spells (0.1 is 1/10)."""
  try:
    tree = ast.parse(expr.replace(",", "").strip(), mode="eval")
  except (SyntaxError, ValueError):
    return None

  def ev(node):
    if isinstance(node, ast.Expression):
      return ev(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
        and not isinstance(node.value, bool):
      if isinstance(node.value, float) and not math.isfinite(node.value):
        raise ValueError("not a finite number")
      return Fraction(str(node.value)) if isinstance(node.value, float) else \
          Fraction(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
      left, right = ev(node.left), ev(node.right)
      if isinstance(node.op, ast.Div) and right == 0:
        raise ZeroDivisionError
      return _BINOPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
      v = ev(node.operand)
      return -v if isinstance(node.op, ast.USub) else v
    raise ValueError("unsupported expression")

  try:
    return ev(tree)
  except (ValueError, ZeroDivisionError, RecursionError, OverflowError):
    return None


def parse_number(text: str) -> Optional[float]:
  try:
    v = float(text.replace(",", "").strip())
  except (ValueError, OverflowError):
    return None
  return v if math.isfinite(v) else None


def parse_final_answer(solution: str) -> Optional[float]:
  """The number on the last `#### N` line, or None."""
  for line in reversed(solution.split("\n")):
    m = _FINAL.match(line)
    if m:
      return parse_number(m.group(1))
  return None


def is_final_line(line: str) -> bool:
  return _FINAL.match(line) is not None


def split_steps(solution: str) -> tuple[list[str], Optional[str]]:
  """Reasoning lines (non-empty, before the final-answer line) and the final-answer line."""
  steps, final = [], None
  for line in solution.split("\n"):
    if _FINAL.match(line):
      final = line
      break
    if line.strip():
      steps.append(line)
  return steps, final


@dataclasses.dataclass
class StepVerdict:
  text: str
  valid: bool
  reason: str  # "ok" or what is wrong


@dataclasses.dataclass
class SolutionVerdict:
  steps: list
  answer: Optional[float]
  answer_correct: bool

  @property
  def all_steps_valid(self) -> bool:
    return all(s.valid for s in self.steps)

  @property
  def fully_valid(self) -> bool:
    """Every step valid, at least one step, and the right final answer."""
    return bool(self.steps) and self.all_steps_valid and self.answer_correct

  @property
  def first_error(self) -> Optional[int]:
    return next((i for i, s in enumerate(self.steps) if not s.valid), None)


def _numbers_in(expr: str) -> list[float]:
  return [float(x) for x in re.findall(r"\d+(?:\.\d+)?", expr.replace(",", ""))]


def check_annotation(line: str) -> tuple[bool, str]:
  """Arithmetic check of every `<<expr=value>>` in a line (the weak, real-data label)."""
  annots = _ANNOT.findall(line)
  for expr, value in annots:
    got, claimed = safe_eval(expr), parse_number(value)
    if got is None or claimed is None:
      return False, f"unparsable annotation <<{expr}={value}>>"
    if abs(got - claimed) > 1e-6 * max(1.0, abs(got)):
      return False, f"arithmetic: {expr} is {got:g}, not {claimed:g}"
  return True, "ok" if annots else "no annotation"


_OP_SYMBOL = {"add": "+", "sub": "-", "mul": "*", "div": "/", "sum": "+"}
_AST_SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_COMMUTATIVE = {"+", "*"}


def binary_expression(expr: str) -> Optional[tuple[str, float, float]]:
  """(operator, left, right) of an expression that is one operation on two numbers, else
  None."""
  try:
    node = ast.parse(expr.replace(",", "").strip(), mode="eval").body
  except (SyntaxError, ValueError):
    return None
  if not (isinstance(node, ast.BinOp) and type(node.op) in _AST_SYMBOL):
    return None
  nums = []
  for side in (node.left, node.right):
    if not (isinstance(side, ast.Constant) and isinstance(side.value, (int, float))
            and not isinstance(side.value, bool)):
      return None
    nums.append(float(side.value))
  return _AST_SYMBOL[type(node.op)], nums[0], nums[1]


def relation_operands(problem: Problem, name: str) -> tuple[str, tuple[float, float]]:
  """The operator and the operands (in the relation's order) that compute `name`."""
  rel = problem.relations[name]
  parents = [float(problem.values[p]) for p in rel["parents"]]
  const = None if rel["const"] is None else float(rel["const"])
  op = rel["op"]
  if op == "sum":
    return "+", (parents[0], parents[1])
  if op == "mul":
    return "*", (const, parents[0])
  return _OP_SYMBOL[op], (parents[0], const)


def _relation_text(symbol: str, operands) -> str:
  return f"{operands[0]:g}{symbol}{operands[1]:g}"


def check_step(problem: Problem, line: str, known: set,
               established: Optional[set] = None) -> StepVerdict:
  """Exact label of one step, given the numbers already established before it.

  With the problem's relations (every record generated now has them) the check is strict:
  the step names one derived entity and computes it by that entity's relation: its
  operation, and as operands the parents' true values (each parent given in the question
  or computed by an earlier step, `established`) and the relation's constant; + and * may
  take them in either order; the arithmetic must be right. Without relations (records
  written before they were stored) it is the lenient check: every operand is a number of
  the question or an earlier result, and the named entity's count is right."""
  annots = _ANNOT.findall(line)
  if len(annots) != 1:
    return StepVerdict(line, False, f"expected one <<expr=value>> annotation, found {len(annots)}")
  ok, why = check_annotation(line)
  if not ok:
    return StepVerdict(line, False, why)
  expr, value = annots[0]
  claimed = parse_number(value)
  names = [n for n in re.findall(r"[A-Z][a-z]+", line.split("<<")[0]) if n in problem.values]
  if problem.relations is None:
    for x in _numbers_in(expr):
      if x not in known:
        return StepVerdict(line, False, f"operand {x:g} is neither in the question nor an "
                                        f"earlier step's result")
  if len(names) != 1:
    return StepVerdict(line, False, "the step does not name exactly one entity it computes")
  name = names[0]
  truth = problem.values[name]
  if problem.relations is not None:
    rel = problem.relations[name]
    if rel["op"] == "given":
      return StepVerdict(line, False, f"{name}'s count is given in the question; no step "
                                      "computes it")
    missing = [p for p in rel["parents"]
               if problem.relations[p]["op"] != "given" and p not in (established or ())]
    if missing:
      return StepVerdict(line, False, f"{name} needs {', '.join(missing)}, which no earlier "
                                      "step computed")
    got = binary_expression(expr)
    symbol, want = relation_operands(problem, name)
    if got is None:
      return StepVerdict(line, False, f"{expr} is not one operation on two numbers; {name} is "
                                      f"{_relation_text(symbol, want)}")
    same = got[0] == symbol and (got[1:] == want or (
        symbol in _COMMUTATIVE and got[1:] == want[::-1]))
    if not same:
      return StepVerdict(line, False, f"wrong relation: {name} is "
                                      f"{_relation_text(symbol, want)}, not {expr}")
  if claimed != truth:
    return StepVerdict(line, False, f"{name} has {truth}, not {claimed:g}")
  return StepVerdict(line, True, "ok")


PLAN_PREFIX = "Plan:"


def plan_names(problem: Problem) -> list[str]:
  """The asked entity, then each one's first parent, back to a count the question gives:
  the order in which the chain is looked up, one hop per name."""
  if problem.relations is None:
    raise ValueError("a plan needs the problem's relations (records written before they "
                     "were stored have none)")
  # The question ends by asking about the chain's last entity: the last name in it.
  named = [n for n in re.findall(r"[A-Z][a-z]+", problem.question) if n in problem.values]
  if not named or problem.values[named[-1]] != problem.answer:
    raise ValueError(f"cannot tell which entity the question asks about: {problem.question!r}")
  names = [named[-1]]
  while problem.relations[names[-1]]["op"] != "given":
    names.append(problem.relations[names[-1]]["parents"][0])
  return names


def plan_line(problem: Problem) -> str:
  """`Plan: Zoe, Dev, Flo.`: the first line of a planned chain of thought."""
  return f"{PLAN_PREFIX} {', '.join(plan_names(problem))}."


def is_plan_line(line: str) -> bool:
  return line.lstrip().startswith(PLAN_PREFIX)


def check_plan(problem: Problem, line: str) -> StepVerdict:
  """A plan line is valid when it names exactly the walk `plan_names` gives, in order."""
  if problem.relations is None:
    return StepVerdict(line, False, "no relations stored for this problem to check a plan")
  got = re.findall(r"[A-Z][a-z]+", line.lstrip()[len(PLAN_PREFIX):])
  want = plan_names(problem)
  if got != want:
    return StepVerdict(line, False, f"the plan is {', '.join(want)}, not {', '.join(got)}")
  return StepVerdict(line, True, "ok")


def corrupt_plan(problem: Problem, rng: np.random.Generator) -> str:
  """A wrong plan line: one hop named as another entity of the question, or one hop left
  out (the errors a policy makes when it loses the chain)."""
  names = plan_names(problem)
  others = [n for n in problem.values if n not in names]
  if others and rng.random() < 0.5:
    names[int(rng.integers(len(names)))] = str(rng.choice(others))
  else:  # a chain has at least two names: the asked entity and a given count
    del names[int(rng.integers(1, len(names)))]
  return f"{PLAN_PREFIX} {', '.join(names)}."


def corrupt_planned(problem: Problem, rng: np.random.Generator,
                    kinds: Optional[Sequence[str]] = None) -> tuple[list[str], int, str]:
  """`corrupt` for the planned format: the reference opens with its plan line, and the
  wrong step is the plan line itself (kind "plan") as often as any other step, unless
  `kinds` is given without "plan"."""
  steps, _ = split_steps(problem.solution)
  plan_ok = kinds is None or "plan" in kinds
  kinds = [k for k in kinds if k != "plan"] if kinds is not None else None
  if plan_ok and (not kinds and kinds is not None or int(rng.integers(0, len(steps) + 1)) == 0):
    return [corrupt_plan(problem, rng)], 0, "plan"
  prefix, i, kind = corrupt(problem, rng, kinds or CORRUPTIONS)
  return [plan_line(problem)] + prefix, i + 1, kind


def check_solution(problem: Problem, text: str) -> SolutionVerdict:
  """Label every step of any candidate solution text; never raises on malformed text. A
  plan line (`Plan: ...`, the planned format) is a step too, judged by `check_plan`."""
  steps, final = split_steps(text if isinstance(text, str) else "")
  known = {float(x) for x in problem.grounded}
  established = set()  # entities an earlier step gave their true count
  verdicts = []
  for line in steps:
    if is_plan_line(line):
      verdicts.append(check_plan(problem, line))
      continue
    v = check_step(problem, line, known, established)
    verdicts.append(v)
    for _, value in _ANNOT.findall(line):
      n = parse_number(value)
      if n is not None:
        known.add(n)
    named = [n for n in re.findall(r"[A-Z][a-z]+", line.split("<<")[0]) if n in problem.values]
    annots = _ANNOT.findall(line)
    if len(named) == 1 and len(annots) == 1 and \
        parse_number(annots[0][1]) == problem.values[named[0]]:
      established.add(named[0])
  answer = parse_final_answer(final) if final else None
  return SolutionVerdict(verdicts, answer, answer is not None and answer == problem.answer)


def check_annotations(text: str) -> SolutionVerdict:
  """Verdicts from calculator annotations alone, for problems without a generator."""
  steps, final = split_steps(text if isinstance(text, str) else "")
  verdicts = [StepVerdict(line, *check_annotation(line)) for line in steps]
  return SolutionVerdict(verdicts, parse_final_answer(final) if final else None, False)


# ----------------------------------------------------------------------------- corrupting

CORRUPTIONS = ("arithmetic", "operand", "skip", "relation")
# The wrong steps a trained policy makes (right arithmetic on a wrong operand), beside the
# ones above: a distractor's constant in place of the relation's constant, and another
# known count in place of the relation's parent.
POLICY_CORRUPTIONS = ("distractor", "parent")
ALL_CORRUPTIONS = CORRUPTIONS + POLICY_CORRUPTIONS


def corrupt(problem: Problem, rng: np.random.Generator,
            kinds: Sequence[str] = CORRUPTIONS) -> tuple[list[str], int, str]:
  """A plausible invalid step in the reference solution.

  Returns (steps up to and including the corrupted one, its index, the corruption kind).
  Earlier steps are the reference's (valid); the last one is invalid by construction:
    arithmetic: right operands, wrong result;
    operand: one operand replaced by another number, result recomputed correctly;
    skip: the previous step's result replaced by the number it was derived from;
    relation: the right count, computed from numbers that are not its relation's
      ("Zoe has 8+8 = 16" where Zoe is Dev + 12): only a checker that knows the relations
      catches it, so a PRM trained on these learns to look at the operands;
    distractor: the relation's constant replaced by the constant of an entity off the
      chain ("Ben has 30+4" where Ben is Abe + 10 and Hana is Ben + 4), result right;
    parent: the relation's parent replaced by another count already known (a given
      count or an earlier result), result right.
  A kind that cannot apply to the chosen step falls back to operand, then arithmetic.
  """
  unknown = sorted(set(kinds) - set(ALL_CORRUPTIONS))
  if unknown or not len(kinds):
    raise ValueError(f"corruption kinds {list(kinds)}: unknown {unknown}; known "
                     f"{list(ALL_CORRUPTIONS)}")
  steps, _ = split_steps(problem.solution)
  i = int(rng.integers(0, len(steps)))
  kind = str(rng.choice(list(kinds)))
  line = steps[i]
  expr, value = _ANNOT.findall(line)[0]
  truth = int(value)
  name = line.split(" ", 1)[0]
  nums = re.findall(r"\d+", expr)
  ops = re.findall(r"[+\-*/]", expr)

  def rebuild(new_nums):
    new_expr = f"{new_nums[0]}{ops[0]}{new_nums[1]}"
    v = safe_eval(new_expr)
    if v is None or v != int(v) or int(v) == truth or v < 0:
      return None
    return _step_text(name, new_expr, int(v), problem.item)

  new = None
  if kind == "relation":
    new = _wrong_relation_step(problem, steps, i, name, truth, rng)
  if kind in POLICY_CORRUPTIONS:
    new = _wrong_operand_step(problem, steps, i, name, nums, rebuild, kind, rng)
  if kind == "skip" and i > 0:
    prev_expr = _ANNOT.findall(steps[i - 1])[0][0]
    prev_val = _ANNOT.findall(steps[i - 1])[0][1]
    if prev_val in nums:
      j = nums.index(prev_val)
      for src in re.findall(r"\d+", prev_expr):
        cand = list(nums)
        cand[j] = src
        new = rebuild(cand)
        if new:
          break
  if new is None and kind in ("operand", "skip") + POLICY_CORRUPTIONS:
    kind = "operand" if kind in POLICY_CORRUPTIONS else kind
    pool = [str(x) for x in problem.grounded] + [str(int(nums[0]) + d) for d in (-2, -1, 1, 2)]
    for j in rng.permutation(len(nums)):
      for cand_num in rng.permutation(pool):
        if cand_num == nums[j] or int(cand_num) <= 0:
          continue
        cand = list(nums)
        cand[j] = str(cand_num)
        new = rebuild(cand)
        if new:
          break
      if new:
        break
  if new is None:  # arithmetic (and fallback): same expression, wrong result
    kind = "arithmetic"
    delta = int(rng.choice([-10, -2, -1, 1, 2, 10]))
    wrong = truth + delta if truth + delta > 0 else truth + abs(delta)
    new = f"{name} has {expr} = <<{expr}={wrong}>>{wrong} {problem.item}."
  return steps[:i] + [new], i, kind


def _wrong_operand_step(problem: Problem, steps: list, i: int, name: str, nums: list,
                        rebuild: Callable, kind: str, rng: np.random.Generator
                        ) -> Optional[str]:
  """Step i with one operand swapped, the result recomputed (see `corrupt`): for
  "distractor" the constant becomes an off-chain entity's constant, for "parent" the
  parent's count becomes another known count. None when the step offers no such swap."""
  rels = problem.relations
  if rels is None or name not in rels:
    return None
  parents = {str(problem.values[p]) for p in rels[name]["parents"]}
  if kind == "distractor":
    chain = set(plan_names(problem))
    pool = {str(r["const"]) for d, r in rels.items()
            if d not in chain and r["const"] is not None}
    slots = [j for j, x in enumerate(nums) if x not in parents]
  else:
    known = {str(r["const"]) for r in rels.values() if r["op"] == "given"}
    known |= {v for s in steps[:i] for _, v in _ANNOT.findall(s)}
    pool = known - parents
    slots = [j for j, x in enumerate(nums) if x in parents]
  for j in rng.permutation(slots) if slots else []:
    for cand_num in rng.permutation(sorted(pool - {nums[j]})):
      cand = list(nums)
      cand[int(j)] = str(cand_num)
      new = rebuild(cand)
      if new:
        return new
  return None


def _wrong_relation_step(problem: Problem, steps: list, i: int, name: str, truth: int,
                         rng: np.random.Generator) -> Optional[str]:
  """`name` with its true count from an expression that is not its relation: two numbers
  of the question or earlier results when some pair makes the count, else a split of it."""
  numbers = sorted({int(x) for x in problem.grounded}
                   | {int(v) for s in steps[:i] for _, v in _ANNOT.findall(s)})
  want = None
  if problem.relations is not None and name in problem.relations:
    want = relation_operands(problem, name)
  candidates = []
  for a in numbers:
    for b in numbers:
      for sym, v in (("+", a + b), ("*", a * b), ("-", a - b)):
        if v == truth:
          candidates.append((sym, a, b))
  candidates += [("+", truth - k, k) for k in range(1, truth)] + [("*", truth, 1)]

  def is_relation(sym, a, b):
    if want is None:
      return False
    w_sym, (x, y) = want
    return sym == w_sym and ((a, b) == (x, y) or (sym in _COMMUTATIVE and (b, a) == (x, y)))
  candidates = [c for c in candidates if not is_relation(*c)]
  if not candidates:
    return None
  sym, a, b = candidates[int(rng.integers(len(candidates)))]
  return _step_text(name, f"{a}{sym}{b}", truth, problem.item)

