"""The profiling round on training throughput: where a train step's time goes, and what
each change of the computation's layout gives, as ratios measured in one run.

  python benchmarks/bench_train_variants.py [--config=configs/arith.py] [--seq_len=192] \
      [--steps=30] [--out=results/bench_train_variants.json]

- Profile: `jax.profiler` traces a few steps of the config's model as configured; each
  executed op's time is summed by kind (matmul fusions, broadcasts, the layer loop, other
  fusions), and the slowest ops are listed with the JAX operation they came from.
- Variants: the config's model with one ModelConfig change each (`VARIANTS`), on the same
  fixed batch and the same initial weights. Each is checked to give the baseline's first
  loss, then one step of each is timed in turn, `--steps` times: each step's ratio is the
  baseline step next to it over the variant's, so load on a shared machine slows both
  sides of a ratio alike; the median ratio and its quartiles are reported.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import glob
import gzip
import json
import re
import tempfile
import time

from common import device_name, matmul_flops_per_s, write_result

import jax
import numpy as np
from flax import linen as nn

from bench_train import model_flops_per_token
from s2jax import sharding
from s2jax import train as T
from s2jax.config import load_config_file, model_config
from s2jax.models.transformer import Transformer

# name -> ModelConfig changes to the config's model ("baseline": the config as it is).
VARIANTS = {
    "baseline": {},
    "scan_rolled": {"scan_layers": True, "scan_unroll": 1},
    "scan_unrolled": {"scan_layers": True, "scan_unroll": 0},
    "layer_loop": {"scan_layers": False},
    "fused_qkv": {"fused_qkv": True},
    "fused_mlp": {"fused_mlp": True},
    "fused_both": {"fused_qkv": True, "fused_mlp": True},
}


def op_kind(name: str):
  """XLA:CPU's executed op names: its matmul library's fusions, broadcasts (zero-filled
  buffers) and every other fusion or op; None for a while loop or call, whose span holds
  the ops it runs (counted themselves)."""
  if name.startswith(("while", "call", "conditional")):
    return None
  if name.startswith(("ynn_fusion", "dot", "xnn_fusion", "onednn")) or "dot" in name:
    return "matmul"
  if "broadcast" in name:
    return "broadcast"
  return "other"


def profile(step, state, batch, steps: int, hlo_text: str) -> tuple:
  """Per-op time of `steps` train steps from a jax.profiler trace: totals by kind and the
  slowest ops, each with the JAX operation its HLO metadata names."""
  names = set(re.findall(r"%([\w.\-]+) = ", hlo_text))
  where = {}
  for m in re.finditer(r"%([\w.\-]+) = [^\n]*?metadata=\{op_name=\"([^\"]+)\"", hlo_text):
    where[m.group(1)] = m.group(2)
  with tempfile.TemporaryDirectory() as tmp:
    jax.profiler.start_trace(tmp, create_perfetto_trace=True)
    for _ in range(steps):
      state, metrics = step(state, batch)
      jax.block_until_ready(metrics)
    jax.profiler.stop_trace()
    files = sorted(glob.glob(f"{tmp}/**/*.trace.json.gz", recursive=True))
    if not files:
      raise RuntimeError(f"jax.profiler wrote no perfetto trace under {tmp}")
    events = json.load(gzip.open(files[-1]))
  events = events["traceEvents"] if isinstance(events, dict) else events
  per_op = collections.Counter()
  for e in events:
    # Executed HLO ops are the events named after an instruction of the compiled module.
    if e.get("ph") == "X" and e.get("name") in names:
      per_op[e["name"]] += e.get("dur", 0) / 1e6 / steps
  per_op = collections.Counter({n: s for n, s in per_op.items() if op_kind(n)})
  by_kind = collections.Counter()
  for name, s in per_op.items():
    by_kind[op_kind(name)] += s
  total = sum(by_kind.values())
  # By source: the JAX operation, forward or backward, over every layer.
  by_source = collections.Counter()
  for name, s in per_op.items():
    src = where.get(name, "")
    skip = ("jit(", "jvp(", "transpose(", "layer_", "layers", "while", "body", "closed_call")
    label = "/".join([c for c in src.split("/") if c and not c.startswith(skip)][-3:])
    by_source[("backward " if "transpose(" in src else "forward ") + (label or name)] += s
  top = [{"op": n, "ms_per_step": 1e3 * s, "share": s / total, "from": where.get(n, "")}
         for n, s in per_op.most_common(15)]
  return state, {"op_seconds_per_step": total,
                 "share_by_kind": {k: v / total for k, v in by_kind.most_common()},
                 "share_by_source": {k: v / total for k, v in by_source.most_common(20)},
                 "slowest_ops": top}


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--config", default="configs/arith.py")
  ap.add_argument("--seq_len", type=int, default=192)
  ap.add_argument("--batch_size", type=int, default=None)
  ap.add_argument("--steps", type=int, default=30, help="timed steps of each variant")
  ap.add_argument("--profile_steps", type=int, default=5)
  ap.add_argument("--variants", default=",".join(VARIANTS),
                  help=f"comma-separated, from {', '.join(VARIANTS)}")
  ap.add_argument("--out", default=None)
  args = ap.parse_args()
  names = args.variants.split(",")
  unknown = [n for n in names if n not in VARIANTS]
  if unknown or names[0] != "baseline":
    raise SystemExit(f"--variants: unknown {unknown} or not starting with baseline; known: "
                     f"{', '.join(VARIANTS)}")
  config = load_config_file(args.config)
  base_cfg = model_config(config.model)
  b = args.batch_size or config.train.batch_size
  mesh = sharding.make_mesh(config.mesh.shape)
  opt = T.make_optimizer(config.optim)
  rng = np.random.default_rng(0)
  batch = {"tokens": rng.integers(4, base_cfg.vocab_size, (b, args.seq_len)).astype(np.int32),
           "mask": np.ones((b, args.seq_len), bool), "targets": np.ones((b, args.seq_len), bool)}
  batch = {k: sharding.global_batch(v, mesh) for k, v in batch.items()}

  arms, result = {}, {"device": device_name(), "config": args.config, "batch": b,
                      "seq_len": args.seq_len, "variants": {}}
  for name in names:
    change = VARIANTS[name]
    cfg = dataclasses.replace(base_cfg, **change)
    model = Transformer(cfg)
    state, sh = T.create_state(model, opt, jax.random.key(0), mesh)
    fn = T.make_train_step(lambda p, x, model=model: T.next_token_loss(model, p, x), opt, 1)
    step = T.jit_train_step(fn, sh, mesh)
    t0 = time.perf_counter()
    state, metrics = step(state, batch)
    loss = float(metrics["loss"])
    compile_s = time.perf_counter() - t0
    arms[name] = {"step": step, "state": state, "cfg": cfg, "fn": fn, "sh": sh}
    result["variants"][name] = {"change": change, "first_step_seconds": compile_s,
                                "first_loss": loss}
    print(f"{name}: first step (compile) {compile_s:.1f} s, loss {loss:.6f}", flush=True)
  # A variant is the same computation: scan_layers=False initialises its per-layer weights
  # from other keys, so only same-layout variants must match the baseline's loss exactly.
  for name in names:
    if "scan_layers" not in VARIANTS[name]:
      got, want = result["variants"][name]["first_loss"], result["variants"]["baseline"]["first_loss"]
      if abs(got - want) > 1e-4 * abs(want):
        raise SystemExit(f"variant {name}: first loss {got} differs from baseline {want}")

  peak = matmul_flops_per_s()
  # One step of each variant in turn, `--steps` times: a step's ratio to the baseline step
  # next to it sees the same machine load, which drifts by a third on a shared host.
  times = {n: [] for n in names}
  for cycle in range(args.steps):
    for name in names:
      arm = arms[name]
      t = time.perf_counter()
      arm["state"], m = arm["step"](arm["state"], batch)
      jax.block_until_ready(m)
      times[name].append(time.perf_counter() - t)
    if (cycle + 1) % 10 == 0:
      print(f"{cycle + 1} steps: " + ", ".join(f"{n} {np.median(times[n]):.3f} s"
                                                for n in names), flush=True)
  peak = max(peak, matmul_flops_per_s())
  flops = model_flops_per_token(base_cfg, args.seq_len) * b * args.seq_len
  for name in names:
    ratios = np.asarray(times["baseline"]) / np.asarray(times[name])
    result["variants"][name].update(
        step_s_median=float(np.median(times[name])),
        speedup_median=float(np.median(ratios)),
        speedup_quartiles=[float(np.quantile(ratios, 0.25)), float(np.quantile(ratios, 0.75))],
        mfu_vs_matmul=flops / float(np.median(times[name])) / peak)
  result["matmul_flops_per_s"] = peak

  best = max(names, key=lambda n: result["variants"][n]["speedup_median"])
  result["profiles"] = {}
  for name in dict.fromkeys(["baseline", best]):
    arm = arms[name]
    jitted = jax.jit(arm["fn"], out_shardings=(arm["sh"], sharding.replicated(mesh)))
    with mesh, nn.logical_axis_rules(sharding.DEFAULT_RULES):
      hlo = jitted.lower(arm["state"], batch).compile().as_text()
    arm["state"], prof = profile(arm["step"], arm["state"], batch, args.profile_steps, hlo)
    result["profiles"][name] = prof
    print(f"profile {name}: " + ", ".join(f"{k} {v:.0%}" for k, v in prof["share_by_kind"].items()))
    for k, v in list(prof["share_by_source"].items())[:12]:
      print(f"  {v:5.1%} {k}")
  for name in names:
    v = result["variants"][name]
    print(f"{name:16s} {v['step_s_median']:.3f} s/step  x{v['speedup_median']:.2f} "
          f"(quartiles {v['speedup_quartiles'][0]:.2f}-{v['speedup_quartiles'][1]:.2f})  MFU "
          f"{v['mfu_vs_matmul']:.2f}  first step {v['first_step_seconds']:.1f} s")
  print(json.dumps(result, indent=2))
  write_result(args.out, result)


if __name__ == "__main__":
  main()
