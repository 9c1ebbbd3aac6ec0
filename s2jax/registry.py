"""Named pieces chosen by config: tasks, advantage estimators, losses, reward and label
sources each keep a `Registry`, so a new one is a function (or class) and a decorator."""
from __future__ import annotations

from typing import Any, Callable


class Registry:
  """name -> entry. `register(name)` decorates; `get(name)` fails with the known names."""

  def __init__(self, kind: str):
    self.kind = kind
    self._entries: dict[str, Any] = {}

  def register(self, name: str, wrap: Callable[[Any], Any] = lambda x: x) -> Callable:
    """Decorator that stores `wrap(fn)` under `name` and returns fn unchanged."""
    def decorate(fn):
      if name in self._entries:
        raise ValueError(f"{self.kind} {name!r} is registered twice")
      self._entries[name] = wrap(fn)
      return fn
    return decorate

  def get(self, name: str) -> Any:
    if name not in self._entries:
      raise ValueError(f"unknown {self.kind} {name!r}; registered: {', '.join(self.names())}")
    return self._entries[name]

  def names(self) -> list[str]:
    return sorted(self._entries)

  def __contains__(self, name: str) -> bool:
    return name in self._entries
