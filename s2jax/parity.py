"""Whether two runs gave the same numbers: every number in two JSON results compared
leaf by leaf, apart from provenance and wall time (a refactor must not move them)."""
from __future__ import annotations

import math
from typing import Any, Iterator

# Keys that differ between launches by design: when, by what command, how long.
VOLATILE = ("run_info", "seconds", "started", "command", "commit")


def leaves(x: Any, path: str = "") -> Iterator[tuple[str, Any]]:
  if isinstance(x, dict):
    for k, v in x.items():
      if k not in VOLATILE:
        yield from leaves(v, f"{path}/{k}")
  elif isinstance(x, (list, tuple)):
    for i, v in enumerate(x):
      yield from leaves(v, f"{path}[{i}]")
  else:
    yield path, x


def compare(a: dict, b: dict, rtol: float = 1e-6, atol: float = 1e-9) -> dict:
  """{"numbers": compared numeric leaves, "identical": equal to the bit, "close": within
  tolerance, "differences": [(path, a, b)], "missing": paths in only one}."""
  la, lb = dict(leaves(a)), dict(leaves(b))
  out = {"numbers": 0, "identical": 0, "close": 0, "differences": [],
         "missing": sorted(set(la) ^ set(lb))}
  for path in sorted(set(la) & set(lb)):
    x, y = la[path], lb[path]
    numeric = (isinstance(x, (int, float)) and isinstance(y, (int, float))
               and not isinstance(x, bool) and not isinstance(y, bool))
    if not numeric:
      if x != y and "config" not in path:  # config paths are allowed to move keys around
        out["differences"].append((path, x, y))
      continue
    out["numbers"] += 1
    if x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y)):
      out["identical"] += 1
    elif math.isclose(x, y, rel_tol=rtol, abs_tol=atol):
      out["close"] += 1
    else:
      out["differences"].append((path, x, y))
  return out
