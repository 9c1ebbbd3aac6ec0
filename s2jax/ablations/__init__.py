"""The ablations that test the paper's claims, one module each (NAME, run_point, write),
chosen by the `name` of an ablation config: `ablations.get(config.name)`. The shared
machinery is `common`."""
import importlib
import pkgutil


def names() -> list[str]:
  return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name != "common")


def get(name: str):
  """The module s2jax.ablations.<name>; an unknown name is an error listing the known."""
  if name not in names():
    raise ValueError(f"unknown ablation {name!r}; known: {', '.join(names())}")
  return importlib.import_module(f"{__name__}.{name}")
