"""One jitted train-step machinery for every objective (SFT, verifier, distillation, RL).

An objective is a `loss_fn(params, batch) -> (loss_sum, weight, metric_sums)`: it returns
sums, not means, so that gradient accumulation over microbatches gives exactly the
gradient of the full global batch (sum of microbatch sums / total weight). The step
skips the update and reports `finite=False` when the loss or gradient is not finite, so
the caller can stop with the last good state intact.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import time
from typing import Any, Callable, Optional

import flax
import flax.traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn

from s2jax import sharding as shd
from s2jax.data import batches as batches_lib
from s2jax.metrics import progress
from s2jax.models.transformer import Transformer, default_positions


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any


# Parameters that weight decay leaves alone, by the last name on their path: norm scales
# and biases. A rule on shapes cannot tell them apart once layers are scanned ([L, d]
# scales look like matrices, a one-layer stack's matrices start with 1).
_NOT_DECAYED = re.compile(r"^(scale|bias|b[qkvo]|.*_bias)$")


def decay_mask(params, decay_embeddings: bool = True):
  """True for every parameter weight decay applies to: weight matrices (attention, MLP,
  LM and scalar heads), and the token embedding when `decay_embeddings`; False for norm
  scales and biases, whatever their shape."""
  def decayed(path, _):
    name = str(getattr(path[-1], "key", path[-1]))
    if name == "embedding":
      return decay_embeddings
    return not _NOT_DECAYED.match(name)
  return jax.tree_util.tree_map_with_path(decayed, params)


def make_optimizer(cfg) -> optax.GradientTransformation:
  """AdamW with linear warm-up, cosine (or constant) decay and global-norm clipping."""
  if cfg.schedule == "cosine":
    lr = optax.warmup_cosine_decay_schedule(0.0, cfg.lr, max(cfg.warmup_steps, 1),
                                            max(cfg.decay_steps, cfg.warmup_steps + 1),
                                            end_value=cfg.lr * cfg.final_lr_fraction)
  elif cfg.schedule == "constant":
    lr = optax.join_schedules([optax.linear_schedule(0.0, cfg.lr, max(cfg.warmup_steps, 1)),
                               optax.constant_schedule(cfg.lr)], [cfg.warmup_steps])
  else:
    raise ValueError(f"optim.schedule={cfg.schedule!r} must be 'cosine' or 'constant'")
  mask = lambda params: decay_mask(params, getattr(cfg, "decay_embeddings", True))
  return optax.chain(
      optax.clip_by_global_norm(cfg.clip_norm),
      optax.adamw(lr, b1=cfg.b1, b2=cfg.b2, weight_decay=cfg.weight_decay, mask=mask))


def next_token_loss(model: Transformer, params, batch) -> tuple:
  """Cross-entropy of every `targets` token given the tokens before it (sums). A packed
  batch (batches.make_packed_batch) brings its own `positions` and `segments`."""
  positions = batch["positions"] if "positions" in batch else default_positions(batch["mask"])
  out = model.apply({"params": params}, batch["tokens"], positions, batch["mask"],
                    segment_ids=batch.get("segments"))
  logits = out.logits[:, :-1]
  labels = batch["tokens"][:, 1:]
  weights = batch["targets"][:, 1:].astype(jnp.float32)
  logz = jax.nn.logsumexp(logits, axis=-1)
  label_logit = jnp.take_along_axis(logits, labels[..., None], axis=-1)[..., 0]
  nll = logz - label_logit
  correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
  return (jnp.sum(nll * weights), jnp.sum(weights),
          {"token_accuracy": jnp.sum(correct * weights)})


def _microbatches(batch, n: int):
  """[B, ...] → [n, B/n, ...], microbatch j taking rows j, j+n, ... so every device keeps
  an equal share of every microbatch."""
  def split(x):
    return x.reshape(x.shape[0] // n, n, *x.shape[1:]).swapaxes(0, 1)
  return jax.tree.map(split, batch)


def make_train_step(loss_fn: Callable, optimizer: optax.GradientTransformation,
                    grad_accum: int = 1) -> Callable:
  """A pure `(state, batch) -> (state, metrics)`; jit it with `jit_train_step`."""

  def grads_of(params, batch):
    def f(p):
      loss_sum, weight, metric_sums = loss_fn(p, batch)
      return loss_sum, (weight, metric_sums)
    (loss_sum, (weight, metric_sums)), g = jax.value_and_grad(f, has_aux=True)(params)
    return g, loss_sum, weight, metric_sums

  def step(state: TrainState, batch):
    if grad_accum == 1:
      g, loss_sum, weight, metric_sums = grads_of(state.params, batch)
    else:
      micro = _microbatches(batch, grad_accum)
      zeros = jax.tree.map(jnp.zeros_like, state.params)
      _, _, _, m0 = jax.eval_shape(grads_of, state.params, jax.tree.map(lambda x: x[0], micro))
      init = (zeros, 0.0, 0.0, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), m0))

      def body(acc, mb):
        g, l, w, m = grads_of(state.params, mb)
        return jax.tree.map(jnp.add, acc, (g, l, w, m)), None
      (g, loss_sum, weight, metric_sums), _ = jax.lax.scan(body, init, micro)
    denom = jnp.maximum(weight, 1.0)
    grads = jax.tree.map(lambda x: x / denom, g)
    loss = loss_sum / denom
    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    updates, new_opt = optimizer.update(grads, state.opt_state, state.params)
    new_params = optax.apply_updates(state.params, updates)
    # A non-finite step leaves the state untouched; the caller stops the run.
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)
    new_state = TrainState(step=state.step + finite.astype(state.step.dtype),
                           params=keep(new_params, state.params),
                           opt_state=keep(new_opt, state.opt_state))
    # The real tokens the step read, for compute accounting from counts (s2jax.compute).
    real = jnp.sum(batch["mask"]) if "mask" in batch else jnp.float32(batch["tokens"].size)
    metrics = {"loss": loss, "grad_norm": grad_norm, "finite": finite, "tokens": weight,
               "input_tokens": real}
    metrics.update({k: v / denom for k, v in metric_sums.items()})
    return new_state, metrics

  return step


def create_state(model: Transformer, optimizer, rng, mesh, rules=shd.DEFAULT_RULES):
  """Sharded parameters and optimizer state; returns (state, state_shardings)."""
  params, param_sh = shd.init_params(model, rng, mesh, rules=rules)
  return state_for(params, param_sh, optimizer, mesh)


def state_for(params, param_sh, optimizer, mesh):
  """A fresh TrainState around existing parameters (any pytree, e.g. policy + value);
  returns (state, state_shardings)."""
  # Moments take their parameter's sharding (propagation alone leaves them replicated);
  # everything else in the optimizer state (step counts) is replicated.
  opt_sh = optax.tree_map_params(optimizer, lambda _, sh: sh,
                                 jax.eval_shape(optimizer.init, params), param_sh,
                                 transform_non_params=lambda _: shd.replicated(mesh))
  with mesh:
    opt_state = jax.jit(optimizer.init, out_shardings=opt_sh)(params)
  state = TrainState(step=jax.device_put(jnp.int32(0), shd.replicated(mesh)), params=params,
                     opt_state=opt_state)
  return state, state_shardings(state)


def transplant_params(target, source) -> tuple:
  """`target` with every leaf that `source` has at the same path replaced by source's value
  (placed like target's leaf), e.g. a verifier initialised from the policy's trunk.
  Returns (params, names copied); a leaf present in both with different shapes is an error."""
  src = flax.traverse_util.flatten_dict(source, sep="/")
  out, copied = {}, []
  for name, leaf in flax.traverse_util.flatten_dict(target, sep="/").items():
    if name in src:
      if src[name].shape != leaf.shape:
        raise ValueError(f"cannot initialise {name}: source has shape {src[name].shape}, "
                         f"target {leaf.shape}")
      # A fresh buffer: the train step donates its state, and the source must survive.
      leaf = jax.device_put(jnp.array(src[name], dtype=leaf.dtype, copy=True), leaf.sharding)
      copied.append(name)
    out[name] = leaf
  return flax.traverse_util.unflatten_dict(out, sep="/"), copied


def save_state(ckpt, state: TrainState, force: bool = False) -> bool:
  return ckpt.save(int(state.step), {"params": state.params, "opt_state": state.opt_state},
                   force=force)


def restore_state(ckpt, state_like: TrainState, step=None) -> TrainState:
  step = ckpt.latest_step() if step is None else step
  items = ckpt.restore({"params": state_like.params, "opt_state": state_like.opt_state}, step)
  return TrainState(step=jax.device_put(jnp.int32(step), state_like.step.sharding),
                    params=items["params"], opt_state=items["opt_state"])


def state_shardings(state):
  return jax.tree.map(lambda x: x.sharding, state)


def jit_train_step(step_fn, state_sharding, mesh, rules=shd.DEFAULT_RULES):
  jitted = jax.jit(step_fn, out_shardings=(state_sharding, shd.replicated(mesh)),
                   donate_argnums=0)

  def run(state, batch):
    with mesh, nn.logical_axis_rules(rules):
      return jitted(state, batch)
  return run


@dataclasses.dataclass
class Job:
  """A training job ready to `fit`: its state (fresh or resumed), the jitted step and the
  checkpointer; `copied` names the leaves taken from `init_params` (None when resumed)."""
  state: TrainState
  step_fn: Callable
  ckpt: Any
  resumed: bool
  copied: Optional[list] = None


def setup_job(model: Transformer, loss: Callable, config, workdir: str, mesh, *,
              init_params: Optional[Callable[[], Any]] = None) -> Job:
  """The set-up every training job shares: optimizer and sharded state, the newest
  checkpoint in <workdir>/checkpoints if there is one, otherwise the weights
  `init_params()` gives (loaded only then: a resumed job never needs them), and the
  jitted train step of `loss(model, params, batch)`."""
  from s2jax import checkpoints
  t = config.train
  optimizer = make_optimizer(config.optim)
  state, state_sh = create_state(model, optimizer, jax.random.key(config.seed), mesh)
  ckpt = checkpoints.Checkpointer(os.path.join(workdir, "checkpoints"), keep=t.keep_checkpoints,
                                  every=t.checkpoint_every)
  copied = None
  resumed = ckpt.latest_step() is not None
  if resumed:
    state = restore_state(ckpt, state)
  elif init_params is not None:
    params, copied = transplant_params(state.params, init_params())
    state = state.replace(params=params)
  step_fn = jit_train_step(make_train_step(lambda p, b: loss(model, p, b), optimizer,
                                           t.grad_accum), state_sh, mesh)
  return Job(state, step_fn, ckpt, resumed, copied)


def fit(state: TrainState, step_fn, batch_at: Callable, *, steps: int, ckpt, writer,
        log_every: int, desc: str, every: int = 0,
        on_every: Optional[Callable[[int, TrainState], None]] = None) -> TrainState:
  """The one training loop every job uses: `batch_at(step)` gives the global batch.

  Saves through the checkpointer (which decides how often), logs the step's metrics every
  `log_every` steps (`tokens`, the loss weight, becomes a rate; `trained_tokens` and
  `trained_positions` count the real tokens and padded positions of the steps since the
  previous line, so their sum over a run's lines is its training compute; `seconds` is
  that stretch's wall time, evaluation callbacks excluded), and stops on a
  non-finite step with the last good checkpoint kept. `on_every(step, state)` runs after every
  `every`-th step (learning curves); its time is not counted in the logged rate."""
  start = int(state.step)
  bar = progress(steps, initial=start, desc=desc)
  t0, weight_since = time.time(), 0.0
  counted = {"trained_tokens": 0.0, "trained_positions": 0.0}
  for step in range(start, steps):
    batch = batch_at(step)
    state, metrics = step_fn(state, batch)
    metrics = jax.device_get(metrics)
    if not metrics["finite"]:
      ckpt.wait()
      raise FloatingPointError(
          f"{desc}: non-finite loss or gradient at step {step} (loss={metrics['loss']}); the "
          f"update was not applied and the last good checkpoint (step {ckpt.latest_step()}) "
          f"is kept in {ckpt.directory}")
    weight_since += float(metrics["tokens"])
    counted["trained_tokens"] += float(metrics["input_tokens"])
    counted["trained_positions"] += float(np.prod(batch["tokens"].shape))
    save_state(ckpt, state)
    bar.update(1)
    if (step + 1) % log_every == 0 or step + 1 == steps:
      dt = time.time() - t0
      bar.set_postfix(loss=f"{metrics['loss']:.4f}")
      logged = {k: v for k, v in metrics.items()
                if k not in ("finite", "tokens", "input_tokens")}
      writer.write(step + 1, **logged, **counted, seconds=dt,
                   targets_per_s=weight_since / max(dt, 1e-9))
      t0, weight_since = time.time(), 0.0
      counted = dict.fromkeys(counted, 0.0)
    if on_every is not None and every > 0 and (step + 1) % every == 0:
      paused = time.time()
      on_every(step + 1, state)
      t0 += time.time() - paused
  bar.close()
  save_state(ckpt, state, force=ckpt.latest_step() != steps)
  return state


def lm_batches(examples, tokenizer, mesh, *, batch_size: int, seed: int, pad_multiple: int,
               seq_len: int, bucket_window: int, pack: bool = False,
               grad_accum: int = 1) -> Callable:
  """`batch_at(step)` for next-token training on `batches.Example`s (SFT, distillation):
  length-bucketed, a pure function of the step (resumable), each process loading its rows.

  `pack`: a step's `batch_size` examples are packed into rows of `seq_len` instead of
  padded to the longest: the same examples and the same summed loss, on fewer positions
  where short examples can share a row (not on length-bucketed batches of similar
  lengths: results/bench_train.json).
  The row count is rounded up to an eighth of the batch (and to the data shards, processes
  and `grad_accum` microbatches), so a few shapes serve every step."""
  batches_lib.check_lengths(examples, seq_len, "training examples")
  lengths = np.asarray([len(e) for e in examples])
  rows = shd.process_rows(batch_size)
  order = batches_lib.batch_order(len(examples), batch_size, seed, lengths=lengths,
                                  window=bucket_window)
  rows_multiple = math.lcm(max(1, batch_size // 8), shd.row_shards(shd.batch_sharding(mesh, 2)),
                           jax.process_count(), grad_accum)

  def batch_at(step):
    chosen = [examples[i] for i in order[step]]
    if pack:
      full = batches_lib.make_packed_batch(chosen, seq_len, tokenizer.pad_id, rows_multiple)
      local = {k: v[shd.process_rows(len(v))] for k, v in full.items()}
    else:
      length = batches_lib.padded_length(chosen, pad_multiple, seq_len)
      local = batches_lib.make_batch(chosen[rows], length, tokenizer.pad_id)
    return {k: shd.global_batch(v, mesh) for k, v in local.items()}
  return batch_at
