"""Device mesh, logical-axis rules and sharded initialisation.

Parameters and activations name their axes logically ("embed", "mlp", "batch", ...);
the rules below map those names onto the mesh axes `data`, `fsdp` and `tensor`. A
dimension that a mesh axis does not divide stays replicated on that axis (for example
2 KV heads on a tensor axis of 8), so any mesh runs any model; the choice only moves
bytes, never the numbers.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import jax
import numpy as np
from flax import linen as nn
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

MESH_AXES = ("data", "fsdp", "tensor")

# Activations: batch over data and fsdp, never over the hidden dim.
# Parameters: the embedding dim over fsdp (ZeRO-3 style), heads/mlp/vocab over tensor.
DEFAULT_RULES = (
    ("batch", ("data", "fsdp")),
    ("length", None),
    ("embed_act", None),
    ("embed", "fsdp"),
    ("vocab", "tensor"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("head_dim", None),
    ("mlp", "tensor"),
    ("layers", None),
)


def make_mesh(shape: Sequence[int], devices=None) -> Mesh:
  """A (data, fsdp, tensor) mesh. One entry may be -1: it takes the remaining devices."""
  devices = list(jax.devices() if devices is None else devices)
  shape = list(shape)
  if len(shape) != 3:
    raise ValueError(f"mesh shape must have 3 entries (data, fsdp, tensor), got {shape}")
  if shape.count(-1) > 1:
    raise ValueError(f"mesh shape may have at most one -1 entry, got {shape}")
  if -1 in shape:
    known = math.prod(s for s in shape if s != -1)
    if len(devices) % known:
      raise ValueError(f"mesh shape {shape} does not divide {len(devices)} devices")
    shape[shape.index(-1)] = len(devices) // known
  if any(s <= 0 for s in shape):
    raise ValueError(f"mesh shape entries must be positive, got {shape}")
  if math.prod(shape) != len(devices):
    raise ValueError(f"mesh shape {tuple(shape)} needs {math.prod(shape)} devices, "
                     f"but {len(devices)} are available")
  # mesh_utils picks a physical layout that keeps inner axes on fast links on TPU.
  from jax.experimental import mesh_utils
  try:
    grid = mesh_utils.create_device_mesh(shape, devices=devices)
  except Exception:  # CPU and odd shapes: plain row-major order is fine there.
    grid = np.asarray(devices).reshape(shape)
  return Mesh(grid, MESH_AXES)


def _fit_spec(spec: P, shape: Sequence[int], mesh: Mesh) -> P:
  """Drop mesh axes that do not divide their dimension (they replicate instead)."""
  fitted = []
  for dim, axes in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec))):
    if axes is None:
      fitted.append(None)
      continue
    axes = (axes,) if isinstance(axes, str) else tuple(axes)
    keep, size = [], 1
    for a in axes:
      if dim % (size * mesh.shape[a]) == 0:
        keep.append(a)
        size *= mesh.shape[a]
    fitted.append(tuple(keep) if len(keep) > 1 else (keep[0] if keep else None))
  return P(*fitted)


def logical_sharding(logical_axes: Sequence[str | None], shape: Sequence[int], mesh: Mesh,
                     rules=DEFAULT_RULES) -> NamedSharding:
  spec = nn.logical_to_mesh_axes(tuple(logical_axes), rules)
  return NamedSharding(mesh, _fit_spec(spec, shape, mesh))


def param_shardings(abstract_boxed: Any, mesh: Mesh, rules=DEFAULT_RULES) -> Any:
  """NamedShardings for a tree of (boxed, abstract) parameters from `jax.eval_shape(init)`."""
  specs = nn.get_partition_spec(abstract_boxed)
  mesh_specs = nn.logical_to_mesh(specs, rules)
  shapes = nn.unbox(abstract_boxed)
  return jax.tree.map(lambda spec, x: NamedSharding(mesh, _fit_spec(spec, x.shape, mesh)),
                      mesh_specs, shapes, is_leaf=lambda s: isinstance(s, P))


def batch_sharding(mesh: Mesh, ndim: int, batch_size: int | None = None) -> NamedSharding:
  """Rows over (data, fsdp); the rest replicated."""
  spec = P(("data", "fsdp"), *([None] * (ndim - 1)))
  if batch_size is not None:
    spec = _fit_spec(spec, (batch_size,) + (1,) * (ndim - 1), mesh)
  return NamedSharding(mesh, spec)


def row_shards(sharding: NamedSharding) -> int:
  """How many ways a NamedSharding splits dimension 0."""
  axes = sharding.spec[0] if len(sharding.spec) else None
  if axes is None:
    return 1
  return math.prod(sharding.mesh.shape[a] for a in (axes if isinstance(axes, tuple) else (axes,)))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def _example_inputs():
  """Smallest call that initialises the transformer (parameter shapes do not depend on it)."""
  from s2jax.models.transformer import default_positions
  tokens = np.zeros((1, 8), np.int32)
  mask = np.ones((1, 8), bool)
  return tokens, default_positions(mask), mask


def _init_fn(model: nn.Module, example_args):
  example_args = example_args or _example_inputs()
  return lambda r: model.init(r, *example_args)["params"]


def abstract_params(model: nn.Module, mesh: Mesh, *example_args, rules=DEFAULT_RULES):
  """Shapes, dtypes and shardings of the parameters, without computing them (for restoring
  a checkpoint)."""
  init = _init_fn(model, example_args)
  with mesh, nn.logical_axis_rules(rules):
    abstract = jax.eval_shape(init, jax.random.key(0))
    shardings = param_shardings(abstract, mesh, rules)
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                      nn.unbox(abstract), shardings)


def init_params(model: nn.Module, rng: jax.Array, mesh: Mesh, *example_args,
                rules=DEFAULT_RULES):
  """Initialise parameters directly into their shardings (no host-side full copy).

  `example_args` default to a tiny transformer call."""
  init = _init_fn(model, example_args)
  with mesh, nn.logical_axis_rules(rules):
    shardings = param_shardings(jax.eval_shape(init, rng), mesh, rules)
    params = jax.jit(lambda r: nn.unbox(init(r)), out_shardings=shardings)(rng)
  return params, shardings


def global_batch(local: np.ndarray, mesh: Mesh) -> jax.Array:
  """Assemble the global batch from this process's rows (each process loads only its own).

  With one process this is a sharded device_put of the whole batch.
  """
  global_rows = local.shape[0] * jax.process_count()
  sharding = batch_sharding(mesh, local.ndim, global_rows)
  return jax.make_array_from_process_local_data(sharding, local)


def process_rows(global_rows: int) -> slice:
  """The rows of a global batch that this process loads."""
  n = jax.process_count()
  if global_rows % n:
    raise ValueError(f"global batch size {global_rows} is not divisible by the "
                     f"{n} processes")
  per = global_rows // n
  return slice(jax.process_index() * per, (jax.process_index() + 1) * per)


def distributed_block(config):
  """The `distributed` block of a job's config; a pipeline's is its stages' (the first
  stage block that has one: they start one set of processes together)."""
  if "distributed" in config:
    return config.distributed
  for value in config.values():
    if hasattr(value, "get") and value.get("distributed") is not None:
      return value.distributed
  return {}


def initialize_distributed(cfg) -> None:
  """`jax.distributed.initialize` from a config's `distributed` block.

  cfg.enabled=False: single process. cfg.coordinator_address empty with enabled=True:
  auto-detection (Cloud TPU, SLURM, ...). On CPU, collectives go through gloo.
  """
  if not cfg.get("enabled", False) or jax.distributed.is_initialized():
    return
  if cfg.get("cpu_collectives"):
    jax.config.update("jax_cpu_collectives_implementation", cfg.cpu_collectives)
  kwargs = {}
  if cfg.get("coordinator_address"):
    kwargs = dict(coordinator_address=cfg.coordinator_address,
                  num_processes=cfg.num_processes, process_id=cfg.process_id)
  jax.distributed.initialize(**kwargs)


def to_global(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
  """Place an array that every process holds in full under `sharding` (any process count)."""
  x = np.asarray(x)
  return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def to_host(x) -> np.ndarray:
  """A global array's full value on every process."""
  if isinstance(x, jax.Array) and not x.is_fully_addressable:
    from jax.experimental import multihost_utils
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(jax.device_get(x))
