"""Training throughput and model FLOP utilisation of the default config's model.

  python benchmarks/bench_train.py [--config=configs/arith.py] [--seq_len=192] \
      [--sft_steps=60 --rounds=2]

MFU = model FLOPs per second (6 x non-embedding parameters x tokens, plus attention and
the LM head) divided by the FLOP/s of a large matmul measured in the same run on the same
device. Target on CPU: >= 0.5. Two measurements:
- one fixed full batch (random tokens, --seq_len), the step alone;
- real SFT on the config's data (`experiments/sft.py`, evaluation off), padded against
  packed (the config's `pack` variant), alternated `--rounds` times: real (non-pad) tokens per second over
  the log lines after the first (which holds the compile), its ratio packed/padded, and
  the MFU of the real tokens (padding is not useful work);
- with --prm_workdir, PRM training on that workdir's labelled records, padded against
  packed (`prm_packed_vs_padded`). --sft_steps=0 --repeats=1 skips most of the rest.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile

from common import device_name, matmul_flops_per_s, median_time, sft_log_lines, write_result

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
  ap.add_argument("--sft_steps", type=int, default=60, help="0: skip the SFT arms")
  ap.add_argument("--rounds", type=int, default=2)
  ap.add_argument("--prm_workdir", default="",
                  help="a trained PRM workdir: PRM training on its labels.jsonl, padded "
                       "against packed (its config's batches, data.pack on and off)")
  ap.add_argument("--prm_steps", type=int, default=40)
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
  print(f"train: {result['tokens_per_s']:.0f} tokens/s, {flops / dt / 1e9:.1f} GFLOP/s model, "
        f"matmul {max(peak, peak_after) / 1e9:.1f} GFLOP/s → MFU ratio {result['mfu_vs_matmul']:.2f}"
        f" (target >= 0.50)", flush=True)
  if args.sft_steps:
    result["sft"] = sft_packed_vs_padded(args, cfg, result["matmul_flops_per_s"])
  if args.prm_workdir:
    result["prm"] = prm_packed_vs_padded(args.prm_workdir, args.prm_steps, args.rounds)
  print(json.dumps(result, indent=2))
  write_result(args.out, result)


def sft_packed_vs_padded(args, cfg, peak: float) -> dict:
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  lines = {"padded": [], "packed": []}
  with tempfile.TemporaryDirectory() as tmp:
    for r in range(args.rounds):
      for arm in lines:
        config = args.config + (("," if ":" in args.config else ":") + "pack"
                                if arm == "packed" else "")
        lines[arm] += sft_log_lines(root, config, args.sft_steps, 10,
                                    os.path.join(tmp, f"{arm}{r}"))
  out = {}
  for arm, got in lines.items():
    seconds = sum(m["seconds"] for m in got)
    tokens = sum(m["trained_tokens"] for m in got)
    positions = sum(m["trained_positions"] for m in got)
    out[arm] = {"lines": len(got), "seconds": seconds, "real_tokens_per_s": tokens / seconds,
                "positions_per_s": positions / seconds, "real_fraction": tokens / positions,
                "median_line_real_tokens_per_s": float(np.median(
                    [m["trained_tokens"] / m["seconds"] for m in got])),
                "mfu_real_tokens": model_flops_per_token(cfg, args.seq_len) * tokens
                / seconds / peak}
    print(f"sft {arm}: {out[arm]['real_tokens_per_s']:.0f} real tokens/s, "
          f"{out[arm]['real_fraction']:.2f} of positions real, MFU "
          f"{out[arm]['mfu_real_tokens']:.2f}", flush=True)
  out["packed_over_padded"] = (out["packed"]["real_tokens_per_s"]
                               / out["padded"]["real_tokens_per_s"])
  print(f"sft packed/padded real tokens/s: {out['packed_over_padded']:.2f} (target >= 1.3)")
  return out


def prm_packed_vs_padded(workdir: str, steps: int, rounds: int) -> dict:
  """PRM training steps on a PRM workdir's own labelled records (labels.jsonl), with the
  batches its training used (s2jax.stages.verifier.training_batches: length-bucketed and
  padded, or packed into rows of seq_len). Each arm first runs the `steps` steps once,
  which compiles every shape they meet; then, alternated `rounds` times, the same steps
  are timed: real (non-pad) tokens per second, and its ratio packed/padded."""
  import time
  from s2jax import verifier, workdirs
  from s2jax.data import jsonl, stepwise
  from s2jax.stages.verifier import training_batches
  base = workdirs.read_config(workdir)
  tok = workdirs.tokenizer(workdir, base)
  records = jsonl.read_jsonl(os.path.join(workdir, "labels.jsonl"), lambda r, where: r,
                             what="PRM training records")
  lengths = np.asarray([stepwise.record_length(tok, r) for r in records])
  model = Transformer(model_config(base.model, vocab_size=tok.vocab_size))
  mesh = sharding.make_mesh(base.mesh.shape)
  opt = T.make_optimizer(base.optim)
  arms = {}
  for arm in ("padded", "packed"):
    config = base.copy_and_resolve_references()
    config.data.pack = arm == "packed"
    state, sh = T.create_state(model, opt, jax.random.key(0), mesh)
    step = T.jit_train_step(T.make_train_step(
        lambda p, b: verifier.prm_loss(model, p, b), opt), sh, mesh)
    batch_at = training_batches(config, tok, records, lengths, mesh)
    batches = [batch_at(i) for i in range(steps)]
    masks = [np.asarray(b["mask"]) for b in batches]
    arms[arm] = {"state": state, "step": step, "batches": batches,
                 "real_tokens": int(sum(m.sum() for m in masks)),
                 "positions": int(sum(m.size for m in masks)),
                 "shapes": sorted({tuple(np.shape(b["tokens"])) for b in batches})}
  seconds = {arm: 0.0 for arm in arms}

  def run(arm):
    a = arms[arm]
    t0 = time.perf_counter()
    for b in a["batches"]:
      a["state"], m = a["step"](a["state"], b)
    jax.block_until_ready(m)
    return time.perf_counter() - t0

  for arm in arms:
    run(arm)  # compiles every shape of these steps
  for _ in range(rounds):
    for arm in arms:
      seconds[arm] += run(arm)
  out = {"workdir": workdir, "records": len(records), "steps": steps, "rounds": rounds,
         "batch_size": base.train.batch_size, "seq_len": base.data.seq_len}
  for arm, a in arms.items():
    # every round runs the same batches
    tokens, positions = rounds * a["real_tokens"], rounds * a["positions"]
    out[arm] = {"seconds": seconds[arm], "real_tokens": tokens, "positions": positions,
                "real_tokens_per_s": tokens / seconds[arm],
                "real_fraction": tokens / positions, "shapes": a["shapes"]}
    print(f"prm {arm}: {out[arm]['real_tokens_per_s']:.0f} real tokens/s, "
          f"{out[arm]['real_fraction']:.2f} of positions real, {len(a['shapes'])} shapes",
          flush=True)
  out["packed_over_padded"] = (out["packed"]["real_tokens_per_s"]
                               / out["padded"]["real_tokens_per_s"])
  print(f"prm packed/padded real tokens/s: {out['packed_over_padded']:.2f}")
  return out


if __name__ == "__main__":
  main()
