"""The RL learner: rollouts from the jitted sampler, rewards from registered sources
(s2jax.rl.rewards), and the one jitted update (s2jax.rl.kernels.make_update) with a
registered advantage estimator and loss. `Learner.iteration(it)` is one RL step; the stage
runner (s2jax.stages.rl) loops it with evaluation, checkpoints and the reward-hacking guard.

A fraction of prompts can start from a prefix that contains a wrong step (a corrupted
reference step, or the policy's own first mistake from the previous iteration) so the
policy practises recovering.
"""
from __future__ import annotations

import os
import time
from typing import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from scipy import stats as sps

from s2jax import checkpoints, evaluation, sharding, verifier, workdirs
from s2jax import train as train_lib
from s2jax.config import model_config, require, validate_optimizer
from s2jax.data import batches, gsm8k
from s2jax.data.steps import encode_with_steps
from s2jax.models.transformer import Transformer
from s2jax.policy import Policy
from s2jax.rl import kernels, rewards as reward_lib, rollouts
from s2jax.rl.rollouts import pack_update, response_steps, rollout, update_widths
from s2jax.sampling import Sampler, SamplingConfig


OUTCOMES = ("exact", "orm", "none")
RECOVERY_SOURCES = ("corrupted", "sampled")


def rl_config(config) -> kernels.RLConfig:
  return kernels.RLConfig(**config.rl.to_dict())


def validate(config) -> None:
  require(bool(config.policy_workdir), "policy_workdir", config.policy_workdir,
          "must name the SFT workdir RL starts from")
  r = config.rewards
  require(r.outcome in OUTCOMES, "rewards.outcome", r.outcome, f"must be one of {OUTCOMES}")
  require(r.step_transform in reward_lib.STEP_TRANSFORMS, "rewards.step_transform",
          r.step_transform, f"must be one of {reward_lib.STEP_TRANSFORMS}")
  require(r.step_weight == 0 or bool(config.prm_workdir), "prm_workdir", config.prm_workdir,
          f"is needed for step rewards (rewards.step_weight={r.step_weight})")
  require(r.outcome != "orm" or bool(config.orm_workdir), "orm_workdir", config.orm_workdir,
          "is needed for rewards.outcome='orm'")
  require(r.step_weight != 0 or (r.outcome != "none" and r.outcome_weight != 0)
          or bool(r.get("sources", ())), "rewards", r.to_dict(), "give no reward at all")
  require(config.recovery.source in RECOVERY_SOURCES, "recovery.source", config.recovery.source,
          f"must be one of {RECOVERY_SOURCES}")
  require(0 <= config.recovery.fraction <= 1, "recovery.fraction", config.recovery.fraction,
          "must be in [0, 1]")
  require(config.rollout.prompts > 0, "rollout.prompts", config.rollout.prompts,
          "must be positive")
  require(config.rollout.get("max_draws", 1) >= 1, "rollout.max_draws",
          config.rollout.get("max_draws", 1), "must be >= 1 (1: no dynamic sampling)")
  kernels.check_batch(rl_config(config), config.rollout.prompts * config.rl.group_size)
  require(config.train.iterations > 0, "train.iterations", config.train.iterations,
          "must be positive")
  validate_optimizer(config)


class Learner:
  """Holds the models, the state and the reward sources; `iteration(it)` is one RL step."""

  def __init__(self, config, workdir: str):
    validate(config)
    self.config, self.workdir = config, workdir
    self.cfg = rl_config(config)
    self.base = Policy(config.policy_workdir, config.policy_step)
    base = self.base.load()
    base_params, self.tok, mesh = base.params, base.tokenizer, base.mesh
    self.mesh = mesh
    shared = self.cfg.uses_critic and config.value.shared_trunk
    policy_overrides = {"scalar_head": True} if shared else {}
    self.policy_config = workdirs.derive_policy_workdir(
        self.base.workdir, workdir, model=policy_overrides, rl=config.to_dict())
    self.policy = Transformer(model_config(self.policy_config.model))
    params, param_sh = {}, {}
    params["policy"], param_sh["policy"] = sharding.init_params(
        self.policy, jax.random.key(config.seed), mesh)
    params["policy"] = train_lib.transplant_params(params["policy"], base_params)[0]
    self.value = None
    if self.cfg.uses_critic and not shared:
      vcfg = dict(self.policy_config.model.to_dict(), lm_head=False, scalar_head=True)
      self.value = Transformer(model_config(ml_collections.ConfigDict(vcfg)))
      params["value"], param_sh["value"] = sharding.init_params(
          self.value, jax.random.key(config.seed + 1), mesh)
      params["value"] = train_lib.transplant_params(params["value"], base_params)[0]
    # The frozen reference (the SFT policy), in the policy's own structure and in its own
    # buffers: the update donates the state.
    self.ref_params = jax.tree.map(jnp.copy, params["policy"])
    self.optimizer = train_lib.make_optimizer(config.optim)
    self.state, state_sh = train_lib.state_for(params, param_sh, self.optimizer, mesh)
    self.update = train_lib.jit_train_step(
        kernels.make_update(self.policy, self.value, self.optimizer, self.cfg), state_sh, mesh)
    self.kl = AdaptiveKL(config.kl.coef, config.kl.target, config.kl.horizon)
    items = ("params", "value", "opt_state", "controller") if self.value else (
        "params", "opt_state", "controller")
    t = config.train
    self.ckpt = checkpoints.Checkpointer(os.path.join(workdir, "checkpoints"),
                                         keep=t.keep_checkpoints, every=t.checkpoint_every,
                                         items=items)
    self.iterations_done = 0
    if self.ckpt.latest_step() is not None:
      self._restore()
    ro = config.rollout
    self.sampler = Sampler(self.policy, pad_id=self.tok.pad_id, eos_id=self.tok.eos_id,
                           max_cache_len=ro.max_cache_len, calculator=self.base.calculator())
    # Tokens the calculator wrote stay in context but out of the loss, if the policy was
    # trained that way (data.tool_tokens="mask").
    self.mask_tool_tokens = self.base.config.data.get("tool_tokens", "train") == "mask"
    self.sampling = SamplingConfig(ro.temperature, ro.top_k, ro.top_p)
    self.rows = ro.prompts * self.cfg.group_size
    self.widths = update_widths(ro.max_new_tokens, ro.get("response_widths", 0), self.cfg.pack)
    self.batch_sh = sharding.batch_sharding(mesh, 2, self.rows)
    self.task = self.base.task
    if config.recovery.fraction > 0 and not self.task.can_corrupt:
      require(config.recovery.source == "sampled", "recovery.fraction", config.recovery.fraction,
              f"needs a corrupter, which task {self.task.name!r} lacks (use "
              "recovery.source='sampled' or recovery.fraction=0)")
    self.train_problems = [self.task.from_json(r) for r in gsm8k.read_jsonl(
        self.base.split_path("train"))[:ro.train_problems]]
    if not self.train_problems:
      raise ValueError(f"{self.base.split_path('train')} has no problems")
    # Iteration `it` draws prompt_order[it] (with dynamic sampling, draw d of it draws
    # prompt_order[it * max_draws + d]): a pure function of it, so resumes continue it.
    self.prompt_order = batches.batch_order(len(self.train_problems), ro.prompts,
                                            self.config.seed)
    self.prm = self._scorer(config.prm_workdir)
    self.orm = self._scorer(config.orm_workdir) if config.rewards.outcome == "orm" else None
    self.reward_sources = reward_lib.reward_sources(config.rewards, self.prm is not None)
    self.mistakes: list = []  # (problem, prefix steps) from the last iteration's rollouts

  # ------------------------------------------------------------------------ state
  def _items(self, state):
    items = {"params": state.params["policy"], "opt_state": state.opt_state,
             "controller": {"kl_coef": jnp.float32(self.kl.value), "opt_step": state.step}}
    if self.value:
      items["value"] = state.params["value"]
    return items

  def save(self, force=False):
    """Checkpoints are numbered by RL iteration (state.step counts optimizer steps)."""
    self.ckpt.save(self.iterations_done, self._items(self.state), force=force)

  def _restore(self):
    items = self.ckpt.restore(self._items(self.state))
    params = {"policy": items["params"]}
    if self.value:
      params["value"] = items["value"]
    self.iterations_done = self.ckpt.latest_step()
    self.state = train_lib.TrainState(step=items["controller"]["opt_step"], params=params,
                                      opt_state=items["opt_state"])
    self.kl.value = float(items["controller"]["kl_coef"])

  def _scorer(self, workdir):
    if not workdir:
      return None
    return verifier.Scorer.from_workdir(workdir, self.config.score_batch_size)

  # ------------------------------------------------------------------------ rollouts
  def prompts_for(self, it: int, draw: int = 0) -> list:
    """(problem, prefix steps) per row: `rollout.prompts` problems, each group_size times;
    the first recovery.fraction of the problems start after a wrong step. With dynamic
    sampling, draw d of iteration it takes the problems of batch it * max_draws + d."""
    ro, rc = self.config.rollout, self.config.recovery
    draws = ro.get("max_draws", 1)
    idx = self.prompt_order[it * draws + draw if draws > 1 else it]
    rng = np.random.default_rng([self.config.seed, it, 7] + ([draw] if draw else []))
    n_rec = int(round(rc.fraction * ro.prompts))
    out = []
    for j, i in enumerate(idx):
      problem, prefix = self.train_problems[i], []
      if j < n_rec:
        if rc.source == "sampled" and self.mistakes:
          problem, prefix = self.mistakes[int(rng.integers(len(self.mistakes)))]
        else:
          prefix = self.task.corrupt(problem, rng, plan=self.base.planned)[0]
      out += [(problem, prefix)] * self.cfg.group_size
    return out

  def _encode(self, rows):
    return [encode_with_steps(self.tok, p.question, prefix)[0] if prefix
            else batches.encode_prompt(self.tok, p.question) for p, prefix in rows]

  def judge(self, rows, responses):
    """Texts, exact verdicts, response steps and where they end, per row."""
    out = []
    for (p, prefix), ids in zip(rows, responses):
      steps, ends = response_steps(self.tok, ids, self.task.is_final_line)
      text = self.tok.decode(ids)
      full = "\n".join(prefix + [text]) if prefix else text
      out.append({"text": full, "verdict": self.task.check(p, full), "steps": steps,
                  "ends": ends, "prefix": prefix})
    return out

  def rewards(self, rows, judged, lengths, n_new: int) -> tuple[np.ndarray, dict]:
    """[B, n_new] token rewards and the iteration's reward / accuracy statistics."""
    batch = reward_lib.Rollouts([p.question for p, _ in rows], judged)
    ctx = reward_lib.Context(self.prm, self.orm, self.config.rewards.step_transform)
    placed = reward_lib.assemble(self.reward_sources, batch, ctx, n_new, lengths)
    correct = np.asarray([j["verdict"].answer_correct for j in judged], np.float32)
    prm_probs = ctx.prm_probs(batch)  # monitored even when step rewards carry no weight
    recovering = np.asarray([bool(j["prefix"]) for j in judged])
    stats = {"verifier_reward": float(placed.sum(axis=1).mean()),
             "true_accuracy": float(correct[~recovering].mean()) if (~recovering).any() else None,
             "recovery_accuracy": float(correct[recovering].mean()) if recovering.any() else None,
             "fully_valid": float(np.mean([j["verdict"].fully_valid for j in judged])),
             "prm_mean": float(np.mean(np.concatenate(prm_probs))) if any(
                 len(s) for s in prm_probs) else None,
             "steps_per_response": float(np.mean([len(j["steps"]) for j in judged]))}
    return placed, stats

  def draw(self, it: int, draw: int, key) -> tuple:
    """One rollout of draw `draw` of iteration `it`: (rows, prompt ids, rollout, judged)."""
    rows = self.prompts_for(it, draw)
    prompts = self._encode(rows)
    out = rollout(self.sampler, self.state.params["policy"], prompts,
                  max_new_tokens=self.config.rollout.max_new_tokens, sampling=self.sampling,
                  rng=jax.random.fold_in(key, 0 if draw == 0 else 1000 + draw),
                  batch_sharding=self.batch_sh, widths=self.widths)
    return rows, prompts, out, self.judge(rows, out["responses"])

  def dynamic_draws(self, it: int, key) -> tuple:
    """Dynamic sampling (DAPO), `rollout.max_draws` > 1 with a group-relative estimator:
    draw batches of prompts until `rollout.prompts` groups with mixed outcomes are in
    hand (or max_draws are drawn), then lay the chosen groups out as one batch. Returns
    (rows, prompt ids, rollout, judged, statistics)."""
    g, need = self.cfg.group_size, self.config.rollout.prompts
    draws, mixed = [], []
    for d in range(self.config.rollout.max_draws):
      draws.append(self.draw(it, d, key))
      mixed.append(rollouts.mixed_groups(
          [j["verdict"].answer_correct for j in draws[-1][3]], g))
      if sum(int(m.sum()) for m in mixed) >= need:
        break
    chosen = rollouts.select_groups(mixed, need)
    pick = [(d, grp * g + k) for d, grp in chosen for k in range(g)]
    rows = [draws[d][0][i] for d, i in pick]
    prompts = [draws[d][1][i] for d, i in pick]
    judged = [draws[d][3][i] for d, i in pick]
    out = rollouts.layout(
        self.sampler, prompts, [draws[d][2]["responses"][i] for d, i in pick],
        [draws[d][2]["tool_mask"][i] for d, i in pick],
        np.asarray([draws[d][2]["stopped"][i] for d, i in pick]),
        max_new_tokens=self.config.rollout.max_new_tokens, widths=self.widths)
    drawn = sum(len(m) for m in mixed)
    n_mixed = sum(int(m.sum()) for m in mixed)
    # Every draw was generated, so every draw is charged (s2jax.compute).
    stats = {"draws": len(draws), "mixed_group_fraction": n_mixed / drawn,
             "mixed_groups_in_batch": min(n_mixed, need) / need,
             "drawn_prompt_tokens": int(sum(len(x) for _, p, _, _ in draws for x in p)),
             "drawn_generated_tokens": int(sum(len(r) for _, _, o, _ in draws
                                               for r in o["responses"]))}
    return rows, prompts, out, judged, stats

  def iteration(self, it: int) -> dict:
    """One RL iteration; returns its metrics with the wall time of each phase."""
    ro = self.config.rollout
    t0 = time.perf_counter()
    key = jax.random.fold_in(jax.random.key(self.config.seed), it)
    if ro.get("max_draws", 1) > 1 and self.cfg.estimator.grouped:
      rows, prompts, out, judged, draw_stats = self.dynamic_draws(it, key)
    else:
      rows, prompts, out, judged = self.draw(it, 0, key)
      draw_stats = {}
      if self.cfg.estimator.grouped:
        draw_stats["mixed_group_fraction"] = float(rollouts.mixed_groups(
            [j["verdict"].answer_correct for j in judged], self.cfg.group_size).mean())
    t1 = time.perf_counter()
    lengths = [len(x) for x in out["responses"]]
    placed, stats = self.rewards(rows, judged, lengths, out["response_mask"].shape[1])
    stats.update(draw_stats)
    self.mistakes = own_mistakes(rows, judged)
    t2 = time.perf_counter()
    put = lambda x: sharding.to_global(np.asarray(x), sharding.batch_sharding(
        self.mesh, np.ndim(x), self.rows))
    inputs = {"tokens": put(out["tokens"]), "mask": put(out["mask"]),
              "response_mask": put(out["response_mask"]), "score_rewards": put(placed),
              "ref_params": self.ref_params, "kl_coef": jnp.float32(self.kl.value),
              "rng": jax.random.fold_in(key, 1)}
    if self.mask_tool_tokens:
      inputs["loss_mask"] = put(out["response_mask"] & ~out["tool_mask"])
    update_shape = out["tokens"].shape
    if self.cfg.pack:
      # Minibatches of packed rows that divide over the shards the rollout rows use; an
      # iteration whose packing saves no row runs unpacked.
      shards = sharding.row_shards(self.batch_sh)
      packed = pack_update(out["tokens"], out["mask"], out["response_mask"], self.tok.pad_id,
                           multiple=self.cfg.minibatches * shards)
      if packed["tokens"].shape[0] < self.rows:
        inputs["packed"] = {
            k: sharding.to_global(v, sharding.batch_sharding(self.mesh, 2, v.shape[0]))
            for k, v in packed.items()}
        update_shape = packed["tokens"].shape
    self.state, m = self.update(self.state, inputs)
    m = jax.device_get(m)
    self.iterations_done = it + 1
    t3 = time.perf_counter()
    if not m["finite"]:
      raise FloatingPointError(
          f"rl: non-finite loss or gradient at iteration {it} (those minibatch steps were "
          f"skipped); stopping with the checkpoint of iteration {self.ckpt.latest_step()} "
          f"kept in {self.ckpt.directory}")
    kl_coef = self.kl.value
    self.kl.update(float(m["kl_per_sequence"]), self.rows)
    metrics = {k: float(v) for k, v in m.items() if k != "finite"}
    metrics.update(self.counts(prompts, lengths, out["tokens"].shape, update_shape))
    if "drawn_generated_tokens" in stats:  # dynamic sampling generated every draw
      metrics.update(prompt_tokens=stats.pop("drawn_prompt_tokens"),
                     generated_tokens=stats.pop("drawn_generated_tokens"))
    metrics.update(stats, kl_coef=kl_coef, stopped=float(np.mean(out["stopped"])),
                   time_rollout=t1 - t0, time_scoring=t2 - t1, time_update=t3 - t2,
                   update_width=int(out["tokens"].shape[1]),
                   update_rows=int(update_shape[0]),
                   rollout_tokens_per_s=float(np.sum(lengths)) / max(t1 - t0, 1e-9))
    return metrics

  def counts(self, prompts, lengths, padded_shape, update_shape=None) -> dict:
    """What one iteration computed, for s2jax.compute: rollout tokens, the tokens each
    verifier that gives a reward scored (a PRM only monitored is not charged), and the
    padded positions of the update's forwards (old policy, separate value model,
    reference) and of its `epochs` of training passes, in the layout the update ran
    (`update_shape`: the packed rows, when packed; default the rollout batch)."""
    prompt, generated = sum(len(p) for p in prompts), int(np.sum(lengths))
    scorers = sum(name in ("prm_steps", "orm") for name, _ in self.reward_sources)
    positions = int(np.prod(padded_shape if update_shape is None else update_shape))
    models = 1 + (self.value is not None)
    return {"prompt_tokens": prompt, "generated_tokens": generated,
            "scored_tokens": scorers * (prompt + generated),
            "forward_positions": positions * (models + 1),
            "update_positions": positions * models * self.cfg.epochs}

  # ------------------------------------------------------------------------ evaluation
  def evaluate(self, records: dict, recovery_set: list) -> dict:
    e = self.config.eval
    params = self.state.params["policy"]
    bsh = sharding.batch_sharding(self.mesh, 2, e.batch_size)
    if self.iterations_done == 0:  # the SFT policy itself: shared, cached evaluation
      summaries = self.base.evaluate(num_problems=e.num_problems, batch_size=e.batch_size,
                                     max_new_tokens=e.max_new_tokens,
                                     max_cache_len=self.config.rollout.max_cache_len)
    else:
      summaries, _ = evaluation.evaluate_splits(
          self.sampler, params, self.tok, records, task=self.task, batch_size=e.batch_size,
          max_new_tokens=e.max_new_tokens, batch_sharding=bsh)
    out = {"accuracy": {k: v["accuracy"] for k, v in summaries.items()},
           "fully_valid": {k: v["fully_valid"] for k, v in summaries.items()},
           "per_problem": {k: v.get("per_problem") for k, v in summaries.items()}}
    if recovery_set:
      gens = self.sampler.generate_all(params, self._encode(recovery_set),
                                       batch_size=e.batch_size, max_new_tokens=e.max_new_tokens,
                                       batch_sharding=bsh, desc="eval recovery")
      judged = self.judge(recovery_set, [ids for ids, _ in gens])
      out["recovery_rate"] = float(np.mean([j["verdict"].answer_correct for j in judged]))
    return out


def own_mistakes(rows, judged) -> list:
  """(problem, prefix up to and including the first wrong step) for every rollout whose
  first wrong step the policy wrote itself (not one planted in its prompt)."""
  out = []
  for (p, _), j in zip(rows, judged):
    first, n_prefix = j["verdict"].first_error, len(j["prefix"])
    if first is not None and n_prefix <= first < n_prefix + len(j["steps"]):
      out.append((p, j["prefix"] + j["steps"][:first - n_prefix + 1]))
  return out


def recovery_problems(policy: Policy, config) -> list:
  """Held-out (test) problems with a corrupted reference prefix, fixed by the seed."""
  n = config.recovery.eval_problems
  if n <= 0:
    return []
  rng = np.random.default_rng([config.seed, 99])
  recs = gsm8k.read_jsonl(policy.split_path("test"))[:n]
  return [(p, policy.task.corrupt(p, rng, plan=policy.planned)[0])
          for p in map(policy.task.from_json, recs)]


class AdaptiveKL:
  """The KL coefficient controller of Ziegler et al. (2019): move beta so that the
  measured KL per sequence tracks `target`; target <= 0 keeps beta fixed."""

  def __init__(self, init: float, target: float = 0.0, horizon: int = 10000):
    self.value, self.target, self.horizon = float(init), float(target), int(horizon)

  def update(self, kl: float, n_sequences: int) -> float:
    if self.target > 0:
      error = float(np.clip(kl / self.target - 1.0, -0.2, 0.2))
      self.value *= 1.0 + error * n_sequences / self.horizon
    return self.value


def hacking_alarm(rewards: Sequence[float], accuracies: Sequence[float], window: int,
                  alpha: float = 0.05) -> bool:
  """True when, over the last `window` iterations against the `window` before them, the
  verifier's reward rose and the exact checker's accuracy fell, each by more than its
  iteration-to-iteration noise: one-sided Welch t-tests on the per-iteration values, both
  below `alpha`. The policy is then learning to please the verifier, not to be right.
  (A fixed tolerance fires on noise when it is below the accuracy's standard error.)"""
  if window < 2 or len(rewards) < 2 * window or len(accuracies) < 2 * window:
    return False  # a window of one iteration has no noise estimate

  def rose(before, now) -> bool:
    p = sps.ttest_ind(now, before, equal_var=False, alternative="greater").pvalue
    return bool(np.isfinite(p) and p < alpha)
  r, a = np.asarray(rewards, float), np.asarray(accuracies, float)
  return (rose(r[-2 * window:-window], r[-window:])
          and rose(-a[-2 * window:-window], -a[-window:]))
