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
  def __init__(self, directory: str, keep: int = 3, every: int = 0):
    self.directory = os.path.abspath(directory)
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                             save_interval_steps=max(every, 1)))

  def latest_step(self) -> Optional[int]:
    return self.manager.latest_step()

  def all_steps(self) -> list:
    return list(self.manager.all_steps())

  def save(self, step: int, state: Any, force: bool = False) -> bool:
    saved = self.manager.save(int(step), args=ocp.args.StandardSave(state), force=force)
    return bool(saved)

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def restore(self, state_like: Any, step: Optional[int] = None) -> Any:
    """Restore into the shapes, dtypes and shardings of `state_like`."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    check_shapes(self.manager.item_metadata(step), state_like,
                 f"checkpoint {self.directory} step {step}")
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state_like)
    return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))

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
