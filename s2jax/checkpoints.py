"""Orbax CheckpointManager: periodic saves, keep-last-N, resume, shape checks.

Every process calls save/restore (orbax coordinates multi-host writes itself). Restoring
into a state of a different shape raises an error that names the offending parameter
instead of orbax's generic one.
"""
from __future__ import annotations

import os
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp


class Checkpointer:
  def __init__(self, directory: str, keep: int = 3, every: int = 0,
               items: tuple = ("params", "opt_state")):
    self.directory = os.path.abspath(directory)
    self.manager = ocp.CheckpointManager(
        self.directory,
        item_handlers={name: ocp.StandardCheckpointHandler() for name in items},
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                             save_interval_steps=max(every, 1)))

  def latest_step(self) -> Optional[int]:
    return self.manager.latest_step()

  def all_steps(self) -> list:
    return list(self.manager.all_steps())

  def save(self, step: int, items: dict, force: bool = False) -> bool:
    """Save named pytrees (e.g. {"params": ..., "opt_state": ...}) as one checkpoint."""
    args = ocp.args.Composite(**{k: ocp.args.StandardSave(v) for k, v in items.items()})
    return bool(self.manager.save(int(step), args=args, force=force))

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def restore(self, items_like: dict, step: Optional[int] = None) -> dict:
    """Restore the named items into the shapes, dtypes and shardings of `items_like`;
    items not asked for (say, the optimizer state when evaluating) are not read."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    meta = self.manager.item_metadata(step)
    for name, like in items_like.items():
      stored = meta.get(name) if meta is not None and hasattr(meta, "get") else None
      if stored is None and meta is not None:
        raise ValueError(f"checkpoint {self.directory} step {step} has no item {name!r}")
      check_shapes(stored, like, f"checkpoint {self.directory} step {step} ({name})")
    abstract = lambda tree: jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)
    args = ocp.args.Composite(**{k: ocp.args.StandardRestore(abstract(v))
                                 for k, v in items_like.items()})
    restored = self.manager.restore(step, args=args)
    return {k: restored[k] for k in items_like}

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


def _shape_of(x):
  return tuple(getattr(x, "shape", ()) or ())


def check_shapes(metadata: Any, expected: Any, what: str) -> None:
  """Raise ValueError naming each parameter whose stored shape differs from the model's."""
  if metadata is None:
    return
  got = dict(_flat(metadata))
  want = dict(_flat(expected))
  problems = []
  for path in sorted(set(got) | set(want)):
    if path not in got:
      problems.append(f"{path}: missing from the checkpoint (model expects {_shape_of(want[path])})")
    elif path not in want:
      problems.append(f"{path}: in the checkpoint but not in the model")
    elif _shape_of(got[path]) != _shape_of(want[path]):
      problems.append(f"{path}: checkpoint has shape {_shape_of(got[path])}, "
                      f"model expects {_shape_of(want[path])}")
  if problems:
    shown = "\n  ".join(problems[:10])
    more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
    raise ValueError(f"{what} does not fit the model:\n  {shown}{more}")


def _flat(tree):
  tree = getattr(tree, "tree", tree)  # orbax metadata wrappers
  leaves, _ = jax.tree_util.tree_flatten_with_path(
      tree, is_leaf=lambda x: hasattr(x, "shape") and not isinstance(x, dict))
  for path, leaf in leaves:
    yield "/".join(_key(p) for p in path), leaf


def _key(p):
  for attr in ("key", "name", "idx"):
    if hasattr(p, attr):
      return str(getattr(p, attr))
  return str(p)
