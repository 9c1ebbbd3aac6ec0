"""Training throughput and model FLOP utilisation of the default config's model.

  python benchmarks/bench_train.py [--config=configs/arith.py] [--seq_len=192]

MFU = model FLOPs per second (6 x non-embedding parameters x tokens, plus attention and
the LM head) divided by the FLOP/s of a large matmul measured in the same run on the same
device. Target on CPU: >= 0.5.
"""
from __future__ import annotations

import argparse
import json

from common import device_name, write_result, matmul_flops_per_s, median_time

import jax
import numpy as np

from s2jax import sharding
from s2jax import train as T
from s2jax.config import load_config_file, model_config
from s2jax.models.transformer import Transformer


def model_flops_per_token(cfg, seq_len: int) -> float:
  """Forward+backward FLOPs per token (PaLM appendix B convention, causal attention
  counted at full T as is customary)."""
  n = cfg.num_params(include_embedding=False)
  head = cfg.d_model * cfg.vocab_size if cfg.lm_head else 0
  attn = 2 * cfg.n_layers * seq_len * cfg.n_heads * cfg.dim_per_head
  return 6 * (n + head) + 6 * attn


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--config", default="configs/arith.py")
  ap.add_argument("--seq_len", type=int, default=192, help="typical padded training length")
  ap.add_argument("--batch_size", type=int, default=None)
  ap.add_argument("--repeats", type=int, default=5)
  ap.add_argument("--model", action="append", default=[],
                  help="model override key=value, e.g. --model d_model=384 (repeatable)")
  ap.add_argument("--out", default=None, help="also write the result as JSON here")
  args = ap.parse_args()
  config = load_config_file(args.config)
  for kv in args.model:
    key, value = kv.split("=", 1)
    if key not in config.model:
      raise SystemExit(f"unknown model key {key!r}; known: {', '.join(config.model.keys())}")
    config.model[key] = type(config.model[key])(value) if config.model[key] is not None else int(value)
  cfg = model_config(config.model)
  b = args.batch_size or config.train.batch_size
  model = Transformer(cfg)
  mesh = sharding.make_mesh(config.mesh.shape)
  opt = T.make_optimizer(config.optim)
  state, sh = T.create_state(model, opt, jax.random.key(0), mesh)
  step = T.jit_train_step(T.make_train_step(lambda p, x: T.next_token_loss(model, p, x), opt,
                                            config.train.grad_accum), sh, mesh)
  rng = np.random.default_rng(0)
  batch = {"tokens": rng.integers(4, cfg.vocab_size, (b, args.seq_len)).astype(np.int32),
           "mask": np.ones((b, args.seq_len), bool), "targets": np.ones((b, args.seq_len), bool)}
  batch = {k: sharding.global_batch(v, mesh) for k, v in batch.items()}
  holder = [state]

  def one():
    holder[0], m = step(holder[0], batch)
    jax.block_until_ready(m)

  peak = matmul_flops_per_s()
  dt = median_time(one, repeats=args.repeats, warmup=2)
  peak_after = matmul_flops_per_s()
  tokens = b * args.seq_len
  flops = model_flops_per_token(cfg, args.seq_len) * tokens
  result = {
      "device": device_name(), "config": args.config, "batch": b, "seq_len": args.seq_len,
      "params_non_embedding": cfg.num_params(include_embedding=False),
      "step_s_median": dt, "tokens_per_s": tokens / dt, "model_flops_per_s": flops / dt,
      "matmul_flops_per_s": max(peak, peak_after),
      "mfu_vs_matmul": flops / dt / max(peak, peak_after),
  }
  print(json.dumps(result, indent=2))
  write_result(args.out, result)
  print(f"train: {result['tokens_per_s']:.0f} tokens/s, {flops / dt / 1e9:.1f} GFLOP/s model, "
        f"matmul {max(peak, peak_after) / 1e9:.1f} GFLOP/s → MFU ratio {result['mfu_vs_matmul']:.2f}"
        f" (target >= 0.50)")


if __name__ == "__main__":
  main()
