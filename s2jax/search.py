"""Test-time search over a policy's samples, guided by verifiers.

Sample-then-choose methods take N finished solutions per problem:
  majority_vote    most common final answer (self-consistency);
  best_of_n        the answer of the highest-scoring solution (ORM score, or PRM step
                   scores aggregated by min, product, last step or mean);
  weighted_vote    the answer whose solutions' scores sum highest.

`beam_search` builds solutions step by step instead: every beam proposes candidate next
steps (the sampler stops at the end-of-step token), the PRM scores them, the best survive;
when every candidate of a problem scores below a threshold it backs up to the previous
step's unused alternatives, within a budget. The model enters only through two callables,
`propose` and `score`, so the search logic is tested without a model.
"""
from __future__ import annotations

import collections
import dataclasses
from typing import Callable, NamedTuple, Optional, Sequence

import jax
import numpy as np

from s2jax.data.steps import encode_with_steps

AGGREGATIONS = ("min", "prod", "last", "mean")


def aggregate(step_scores: Sequence[float], how: str = "min") -> float:
  """One solution score from its step scores; a solution without steps scores 0."""
  s = np.asarray(step_scores, float)
  if how not in AGGREGATIONS:
    raise ValueError(f"aggregation {how!r} must be one of {AGGREGATIONS}")
  if s.size == 0:
    return 0.0
  return float({"min": s.min, "prod": s.prod, "last": lambda: s[-1], "mean": s.mean}[how]())


def majority_candidates(answers: Sequence[Optional[float]]) -> list:
  """The answers tied for the most votes (missing answers do not vote), each equally
  likely to be the vote's pick; [] when no sample has an answer."""
  counts = collections.Counter(a for a in answers if a is not None)
  best = max(counts.values(), default=0)
  return [a for a in counts if counts[a] == best]


def best_of_n_candidates(answers: Sequence[Optional[float]],
                         scores: Sequence[float]) -> list:
  """The answers of the solutions tied at the top score, one per solution, so a random
  pick among them is a random pick among the tied solutions."""
  if not len(answers):
    return []
  s = np.asarray(scores, float)
  return [answers[i] for i in np.flatnonzero(s == s.max())]


def weighted_vote_candidates(answers: Sequence[Optional[float]],
                             scores: Sequence[float]) -> list:
  """The answers tied for the largest total score over the solutions that give them."""
  total = collections.defaultdict(float)
  for a, s in zip(answers, scores):
    if a is not None:
      total[a] += float(s)
  best = max(total.values(), default=None)
  return [a for a in total if total[a] == best]


def _pick(candidates: list, rng: Optional[np.random.Generator]):
  if not candidates:
    return None
  return candidates[0] if rng is None else candidates[int(rng.integers(len(candidates)))]


def majority_vote(answers: Sequence[Optional[float]],
                  rng: Optional[np.random.Generator] = None) -> Optional[float]:
  """Most common non-missing answer; ties go to a random one with `rng`, else the first
  seen."""
  return _pick(majority_candidates(answers), rng)


def best_of_n(answers: Sequence[Optional[float]], scores: Sequence[float],
              rng: Optional[np.random.Generator] = None) -> Optional[float]:
  """The answer of the highest-scoring solution; ties go to a random one with `rng`, else
  the first."""
  return _pick(best_of_n_candidates(answers, scores), rng)


def weighted_vote(answers: Sequence[Optional[float]], scores: Sequence[float],
                  rng: Optional[np.random.Generator] = None) -> Optional[float]:
  """The answer with the largest total score over the solutions that give it; ties go to
  a random one with `rng`, else the first seen."""
  return _pick(weighted_vote_candidates(answers, scores), rng)


def subset_accuracy(choose: Callable, n: int, num_samples: int, truth: float,
                    *per_sample: Sequence) -> float:
  """Accuracy of `choose(*columns)` on N-sample subsets, averaged over the
  num_samples // n disjoint subsets of one problem's samples (less variance than one).
  `choose` returns an answer, or a list of equally likely answers (a `*_candidates`
  function: ties broken at random, counted by their expected accuracy)."""
  groups = num_samples // n
  if groups == 0:
    raise ValueError(f"N={n} is more than the {num_samples} samples drawn")
  hits = 0.0
  for g in range(groups):
    cols = [list(c[g * n:(g + 1) * n]) for c in per_sample]
    got = choose(*cols)
    if isinstance(got, list):
      hits += float(np.mean([a == truth for a in got])) if got else 0.0
    else:
      hits += got == truth
  return hits / groups


# ----------------------------------------------------------------------------- beam search

@dataclasses.dataclass(frozen=True)
class BeamConfig:
  width: int = 4            # beams kept per problem
  expansions: int = 4       # candidate next steps sampled per beam
  threshold: float = 0.5    # a step scoring below this is a dead end
  max_backtracks: int = 2   # per problem
  max_depth: int = 12       # steps per solution
  aggregation: str = "min"  # how a partial solution's step scores rank it

  def __post_init__(self):
    for k in ("width", "expansions", "max_depth"):
      if getattr(self, k) < 1:
        raise ValueError(f"beam search: {k}={getattr(self, k)} must be >= 1")
    if self.max_backtracks < 0:
      raise ValueError(f"beam search: max_backtracks={self.max_backtracks} must be >= 0")
    if self.aggregation not in AGGREGATIONS:
      raise ValueError(f"beam search: aggregation {self.aggregation!r} not in {AGGREGATIONS}")


class Proposal(NamedTuple):
  text: str       # one step, or the final-answer line
  final: bool     # the solution ends here
  tokens: int     # tokens generated for it (compute accounting)


@dataclasses.dataclass
class Candidate:
  steps: tuple
  scores: tuple = ()
  final: Optional[str] = None

  def score(self, how: str) -> float:
    return aggregate(self.scores, how)

  @property
  def last_score(self) -> float:
    return self.scores[-1] if self.scores else 1.0

  @property
  def text(self) -> str:
    return "\n".join(self.steps + ((self.final,) if self.final is not None else ()))


@dataclasses.dataclass
class SearchResult:
  solution: str
  answer: Optional[float]
  score: float
  finished: bool
  tokens: int            # generated tokens, discarded candidates included
  backtracks: int
  rounds: int


@dataclasses.dataclass
class _ProblemState:
  frontier: list
  stack: list = dataclasses.field(default_factory=list)   # ranked unused alternatives per depth
  finished: list = dataclasses.field(default_factory=list)
  fallback: list = dataclasses.field(default_factory=list)
  tokens: int = 0
  backtracks: int = 0
  rounds: int = 0
  done: bool = False


def beam_search(num_problems: int, propose: Callable, score: Callable,
                cfg: BeamConfig = BeamConfig(), *,
                parse_answer: Callable[[str], Optional[float]]) -> list[SearchResult]:
  """PRM-guided step-level beam search with backtracking, in lockstep over problems.

  propose(requests, n) -> for each (problem, steps) request, n Proposals for the next step;
  score(requests) -> for each (problem, steps) request, the step scores of all its steps.
  Both are called once per round with every problem's requests, so the model sees big
  batches. parse_answer (the task's) reads the answer of the final line."""
  states = [_ProblemState(frontier=[Candidate(steps=())]) for _ in range(num_problems)]
  how = cfg.aggregation
  for _ in range(cfg.max_depth + cfg.max_backtracks):
    active = [i for i, s in enumerate(states) if not s.done]
    if not active:
      break
    requests = [(i, c) for i in active for c in states[i].frontier]
    proposals = propose([(i, c.steps) for i, c in requests], cfg.expansions)
    pools = collections.defaultdict(dict)
    to_score = []
    for (i, parent), props in zip(requests, proposals):
      for p in props:
        states[i].tokens += p.tokens
        if p.final:
          cand = Candidate(parent.steps, parent.scores, p.text)
        else:
          cand = Candidate(parent.steps + (p.text,))
          to_score.append((i, cand))
        pools[i].setdefault((cand.steps, cand.final), cand)  # duplicates add nothing
    if to_score:
      got = score([(i, c.steps) for i, c in to_score])
      for (_, c), s in zip(to_score, got):
        c.scores = tuple(float(x) for x in s)
    for i in active:
      st = states[i]
      st.rounds += 1
      pool = sorted(pools[i].values(), key=lambda c: -c.score(how))
      st.fallback.extend(pool)
      dead_end = pool and not any(c.final is not None or c.last_score >= cfg.threshold
                                  for c in pool)
      if dead_end and st.backtracks < cfg.max_backtracks and st.stack:
        st.backtracks += 1
        st.frontier = st.stack[-1][:cfg.width]
        st.stack[-1] = st.stack[-1][cfg.width:]
        if not st.stack[-1]:
          st.stack.pop()
        continue
      chosen, rest = pool[:cfg.width], pool[cfg.width:]
      st.finished.extend(c for c in chosen if c.final is not None)
      st.frontier = [c for c in chosen if c.final is None and len(c.steps) < cfg.max_depth]
      leftovers = [c for c in rest if c.final is None]
      if leftovers:
        st.stack.append(leftovers)
      st.done = len(st.finished) >= cfg.width or not st.frontier
  results = []
  for st in states:
    pick_from = st.finished or st.fallback
    best = max(pick_from, key=lambda c: c.score(how)) if pick_from else Candidate(steps=())
    answer = parse_answer(best.final) if best.final is not None else None
    results.append(SearchResult(best.text, answer, best.score(how), bool(st.finished),
                                st.tokens, st.backtracks, st.rounds))
  return results


def model_proposer(sampler, params, tokenizer, questions: Sequence[str], *, batch_size: int,
                   max_step_tokens: int, sampling, rng, is_final_line: Callable[[str], bool],
                   batch_sharding=None) -> Callable:
  """`propose` for `beam_search` backed by the jitted sampler: one call per round samples
  every request's next step, stopping at end-of-step (or eos for the final line)."""
  state = {"rng": rng}

  def propose(requests, n):
    encoded = [encode_with_steps(tokenizer, questions[i], steps)[0] for i, steps in requests]
    # A chain that leaves no room in the cache for one more step gets no proposals: the
    # search drops it and picks from what it has seen, instead of the sampler failing.
    fits = [len(ids) + max_step_tokens <= sampler.max_cache_len for ids in encoded]
    prompts = [ids for ids, ok in zip(encoded, fits) if ok for _ in range(n)]
    state["rng"], key = jax.random.split(state["rng"])
    outs = sampler.generate_all(params, prompts, batch_size=batch_size,
                                max_new_tokens=max_step_tokens, rng=key, sampling=sampling,
                                stop_ids=(tokenizer.step_end_id,), batch_sharding=batch_sharding)
    props = []
    for ids, _ in outs:
      ended_eos = bool(ids) and ids[-1] == tokenizer.eos_id
      # A byte-fallback newline inside a step would split it in two when re-encoded.
      text = tokenizer.decode([t for t in ids if t != tokenizer.step_end_id])
      text = text.replace("\n", " ").strip()
      final = ended_eos or is_final_line(text)
      props.append(Proposal(text, final, len(ids)))
    groups = iter([props[k * n:(k + 1) * n] for k in range(sum(fits))])
    return [next(groups) if ok else [] for ok in fits]
  return propose


def model_step_scorer(scorer, questions: Sequence[str]) -> Callable:
  """`score` for `beam_search` backed by a `verifier.Scorer`."""
  def score(requests):
    return scorer.step_scores([questions[i] for i, _ in requests], [s for _, s in requests])
  return score
