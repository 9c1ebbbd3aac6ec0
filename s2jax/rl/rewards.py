"""Reward sources, registered by name: callables from one iteration's rollouts to rewards,
each of a kind that says where its reward goes.

  steps     one reward per reasoning step of the response, on that step's end-of-step
            token (dense, the paper's step-level signal);
  outcome   one reward per response, on its last generated token.

A learner sums its sources with weights (`reward_sources(config)`: the `rewards.*` keys,
plus any `rewards.sources` (name, weight) pairs) into the [B, N] token rewards of the
jitted update. A new source is one function and one registration:

  @register("length_penalty", kind="outcome")
  def length_penalty(batch: Rollouts, ctx: Context) -> np.ndarray:
    return -np.asarray([len(j["steps"]) for j in batch.judged], np.float32)
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

import numpy as np

from s2jax.registry import Registry

STEP_TRANSFORMS = ("delta", "centered", "prob", "log")
KINDS = ("steps", "outcome")


@dataclasses.dataclass
class Rollouts:
  """One iteration's responses as the rewards see them. judged[i] holds "text" (prefix and
  response), "verdict" (the task's), "steps" (the response's steps), "ends" (token index
  of each step's end) and "prefix" (steps given in the prompt)."""
  questions: list
  judged: list


@dataclasses.dataclass
class Context:
  """What sources may use besides the rollouts: the verifiers and the rewards config."""
  prm: Any = None          # verifier.Scorer of a PRM, or None
  orm: Any = None          # verifier.Scorer of an ORM, or None
  step_transform: str = "delta"
  _prm_probs: Optional[list] = None

  def prm_probs(self, batch: Rollouts) -> list:
    """P(step correct) of every response step (prefix steps are scored as context, not
    returned); computed once per iteration."""
    if self._prm_probs is None:
      if self.prm is None:
        self._prm_probs = [np.zeros(0, np.float32)] * len(batch.judged)
      else:
        scores = self.prm.step_scores(batch.questions,
                                      [j["prefix"] + j["steps"] for j in batch.judged])
        self._prm_probs = [s[len(j["prefix"]):] for s, j in zip(scores, batch.judged)]
    return self._prm_probs


@dataclasses.dataclass(frozen=True)
class Source:
  fn: Callable[[Rollouts, Context], Any]
  kind: str


_REGISTRY = Registry("reward source")
get, names = _REGISTRY.get, _REGISTRY.names


def register(name: str, *, kind: str):
  if kind not in KINDS:
    raise ValueError(f"reward {name!r}: kind {kind!r} must be one of {KINDS}")
  return _REGISTRY.register(name, lambda fn: Source(fn, kind))


def step_reward(probs: np.ndarray, transform: str) -> np.ndarray:
  """A PRM's P(step correct) as a per-step reward. delta: P minus the previous step's P
  (1 before the first step), so a response's step rewards sum to P(last step) - 1 and an
  extra step earns nothing by being there; log: log P (never positive); centered: P - 0.5
  (every step judged likely right adds reward, so longer chains earn more); prob: P."""
  probs = np.asarray(probs, np.float32)
  if transform == "delta":
    return np.diff(np.concatenate([[1.0], probs])).astype(np.float32)
  if transform == "centered":
    return probs - 0.5
  if transform == "prob":
    return probs
  if transform == "log":
    return np.log(np.clip(probs, 1e-6, 1.0))
  raise ValueError(f"rewards.step_transform={transform!r} must be one of {STEP_TRANSFORMS}")


@register("prm_steps", kind="steps")
def prm_steps(batch: Rollouts, ctx: Context) -> list:
  """The PRM's confidence in each step (the paper's RL signal), transformed."""
  return [step_reward(p, ctx.step_transform) for p in ctx.prm_probs(batch)]


@register("exact_outcome", kind="outcome")
def exact_outcome(batch: Rollouts, ctx: Context) -> np.ndarray:
  """1 for a right final answer, 0 otherwise (the task's checker)."""
  return np.asarray([j["verdict"].answer_correct for j in batch.judged], np.float32)


@register("orm", kind="outcome")
def orm(batch: Rollouts, ctx: Context) -> np.ndarray:
  """An outcome verifier's P(correct) of the whole text."""
  return ctx.orm.outcome_scores(batch.questions, [j["text"] for j in batch.judged])


def place_rewards(num_new: int, lengths: Sequence[int], step_ends: Sequence[Sequence[int]],
                  step_rewards: Sequence[np.ndarray], outcome: np.ndarray,
                  step_weight: float, outcome_weight: float) -> np.ndarray:
  """[B, N] token rewards: each step's reward on its end-of-step token, the outcome
  reward on the last generated token (nothing for an empty response)."""
  out = np.zeros((len(lengths), num_new), np.float32)
  for i, n in enumerate(lengths):
    if step_weight and len(step_ends[i]):
      np.add.at(out[i], np.asarray(step_ends[i], int), step_weight * np.asarray(step_rewards[i]))
    if outcome_weight and n > 0:
      out[i, n - 1] += outcome_weight * float(outcome[i])
  return out


def reward_sources(rewards_config, has_prm: bool) -> list[tuple[str, float]]:
  """(source, weight) pairs of a `rewards` config block: PRM step rewards (with a PRM),
  the outcome (exact checker or ORM), then `sources`, extra registered sources."""
  r = rewards_config
  out = []
  if has_prm and r.step_weight:
    out.append(("prm_steps", float(r.step_weight)))
  if r.outcome != "none" and r.outcome_weight:
    out.append(({"exact": "exact_outcome", "orm": "orm"}[r.outcome], float(r.outcome_weight)))
  for name, weight in r.get("sources", ()):
    get(name)  # an unknown name fails here, before any rollout
    out.append((str(name), float(weight)))
  return out


def assemble(sources: Sequence[tuple[str, float]], batch: Rollouts, ctx: Context,
             num_new: int, lengths: Sequence[int]) -> np.ndarray:
  """[B, N] token rewards: every source's rewards, weighted, where its kind puts them."""
  out = np.zeros((len(lengths), num_new), np.float32)
  ends = [j["ends"] for j in batch.judged]
  empty = [np.zeros(0, np.float32)] * len(lengths)
  for name, weight in sources:
    source = get(name)
    values = source.fn(batch, ctx)
    if source.kind == "steps":
      out += place_rewards(num_new, lengths, ends, values, np.zeros(len(lengths)), weight, 0.0)
    else:
      out += place_rewards(num_new, lengths, ends, empty, values, 0.0, weight)
  return out
