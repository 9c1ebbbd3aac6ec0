"""KV-cache sampler against a no-cache loop that recomputes the full forward pass.

  python benchmarks/bench_sampler.py [--config=configs/arith.py]
  python benchmarks/bench_sampler.py --policy_workdir=W [--refill_samples=4096]

Both decode greedily from the same prompts for the same number of tokens; the no-cache
loop is jitted once over a fixed-size buffer (the fair version of recomputation). Decode
tokens per second and the ratio, measured in one run, at batch 1, 32 and 128. Also the
cost of the calculator tool (s2jax.calculator) as a ratio, tool on / tool off, both
sampling at temperature 1 with the same key: the weights are random, so every token is
given one character ('<', '=', digits, '+', '>') so that the random text opens and closes
annotations often, and the tool evaluates them and writes values.

With --policy_workdir (a trained policy, e.g. the testbed's SFT stage), the refill of
finished rows instead: the verifier stage's sampling job (its train questions, temperature
0.8, the stage's batch and budget), whose solutions have mixed lengths, generated with
refill on and off, alternated, in one run: tokens/s of each, their ratio, whether every
sample is identical (each prompt has its own key), and the length distribution.
"""
from __future__ import annotations

import argparse
import functools
import json

from common import device_name, write_result, median_time

import jax
import jax.numpy as jnp
import numpy as np

from s2jax import calculator as calc_lib
from s2jax import sharding
from s2jax.config import load_config_file, model_config
from s2jax.models.transformer import Transformer, default_positions
from s2jax.sampling import Sampler, SamplingConfig


@functools.partial(jax.jit, static_argnames=("model", "new_tokens"))
def no_cache_greedy(model, params, tokens, mask, new_tokens):
  """Left-padded prompts [B, P]; every step re-runs the model over the whole buffer."""
  b, p = tokens.shape
  buf = jnp.concatenate([tokens, jnp.zeros((b, new_tokens), jnp.int32)], axis=1)
  valid = jnp.concatenate([mask, jnp.zeros((b, new_tokens), bool)], axis=1)

  def body(i, carry):
    buf, valid = carry
    logits = model.apply({"params": params}, buf, default_positions(valid), valid).logits
    nxt = jnp.argmax(logits[:, p + i - 1], axis=-1).astype(jnp.int32)
    return buf.at[:, p + i].set(nxt), valid.at[:, p + i].set(True)

  buf, _ = jax.lax.fori_loop(0, new_tokens, body, (buf, valid))
  return buf[:, p:]


def random_text_calculator(vocab_size: int) -> calc_lib.Calculator:
  """A calculator over a vocabulary whose tokens are single characters of annotations."""
  alphabet = "<<<<<=====0123456789+>.-"
  chars = np.asarray([[ord(alphabet[t % len(alphabet)])] for t in range(vocab_size)],
                     np.int32)
  ids = {c: alphabet.index(c) for c in "0123456789.-"}
  return calc_lib.Calculator(chars, ids, (alphabet.index(">"),) * 2)


def refill_benchmark(args) -> dict:
  import time
  from s2jax import evaluation
  from s2jax.data import gsm8k
  from s2jax.policy import Policy
  policy = Policy(args.policy_workdir)
  m = policy.load()
  records = gsm8k.read_jsonl(policy.split_path("train"))
  k = 4
  questions = [r["question"] for r in records[:args.refill_samples // k] for _ in range(k)]
  sampler = policy.sampler(args.max_cache_len)
  kw = dict(batch_size=args.refill_batch, max_new_tokens=args.refill_new_tokens,
            sampling=SamplingConfig(0.8), rng=jax.random.key(0), with_counts=True)
  def run(refill, qs):
    sampler.refill, sampler.decode_steps = refill, 0
    t = time.perf_counter()
    texts, counts = evaluation.generate_solutions(sampler, m.params, m.tokenizer, qs, **kw)
    return time.perf_counter() - t, texts, [c[1] for c in counts], sampler.decode_steps
  for refill in (False, True):  # compile both arms first
    run(refill, questions[:2 * args.refill_batch])
  times, texts, steps = {False: [], True: []}, {}, {}
  for _ in range(args.repeats):
    for refill in (False, True):
      dt, texts[refill], lengths, steps[refill] = run(refill, questions)
      times[refill].append(dt)
  identical = texts[False] == texts[True]
  tokens = int(np.sum(lengths))
  off, on = (float(np.median(times[r])) for r in (False, True))
  # Decode steps are what refill saves on any device; the time per step is the device's.
  result = {"policy_workdir": args.policy_workdir, "samples": len(questions),
            "batch": args.refill_batch, "max_new_tokens": args.refill_new_tokens,
            "generated_tokens": tokens, "decode_steps": {"off": steps[False], "on": steps[True]},
            "rows_busy": {"off": tokens / (steps[False] * args.refill_batch),
                          "on": tokens / (steps[True] * args.refill_batch)},
            "length_percentiles": {q: float(np.percentile(lengths, q)) for q in (10, 50, 90, 100)},
            "off_tokens_per_s": tokens / off, "on_tokens_per_s": tokens / on,
            "on_over_off": off / on, "identical_samples": bool(identical),
            "seconds": {"off": times[False], "on": times[True]}}
  print(f"refill off {tokens / off:8.0f} tok/s   on {tokens / on:8.0f} tok/s   "
        f"ratio {off / on:.2f}x   decode steps off {steps[False]} on {steps[True]}   "
        f"identical={identical}   lengths p10/p50/p90/max "
        + "/".join(f"{v:.0f}" for v in result["length_percentiles"].values()), flush=True)
  return result


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--policy_workdir", default="",
                  help="measure refill on/off sampling this policy (see the docstring)")
  ap.add_argument("--refill_samples", type=int, default=4096)
  ap.add_argument("--refill_batch", type=int, default=128)
  ap.add_argument("--refill_new_tokens", type=int, default=240)
  ap.add_argument("--max_cache_len", type=int, default=640)
  ap.add_argument("--config", default="configs/arith.py")
  ap.add_argument("--prompt_len", type=int, default=64)
  ap.add_argument("--new_tokens", type=int, default=32)
  ap.add_argument("--batches", default="1,32,128")
  ap.add_argument("--repeats", type=int, default=2)
  ap.add_argument("--out", default=None, help="also write the result as JSON here")
  args = ap.parse_args()
  if args.policy_workdir:
    result = {"device": device_name(), **refill_benchmark(args)}
    print(json.dumps(result, indent=2))
    write_result(args.out, result)
    return
  config = load_config_file(args.config)
  cfg = model_config(config.model)
  model = Transformer(cfg)
  mesh = sharding.make_mesh(config.mesh.shape)
  params, _ = sharding.init_params(model, jax.random.key(0), mesh)
  # eos never appears in greedy output of random weights often enough to matter; use an
  # id outside the vocabulary so both paths decode exactly new_tokens tokens.
  sampler = Sampler(model, pad_id=0, eos_id=cfg.vocab_size, max_cache_len=args.prompt_len +
                    args.new_tokens, buckets=(args.prompt_len,))
  tool_sampler = Sampler(model, pad_id=0, eos_id=cfg.vocab_size,
                         max_cache_len=args.prompt_len + args.new_tokens,
                         buckets=(args.prompt_len,),
                         calculator=random_text_calculator(cfg.vocab_size))
  rng = np.random.default_rng(0)
  rows = []
  for b in [int(x) for x in args.batches.split(",")]:
    prompts = [list(rng.integers(4, cfg.vocab_size, args.prompt_len)) for _ in range(b)]
    toks = jnp.asarray(prompts, jnp.int32)
    mask = jnp.ones_like(toks, bool)
    cached = median_time(lambda: sampler(params, prompts, max_new_tokens=args.new_tokens),
                         repeats=args.repeats)
    recompute = median_time(lambda: no_cache_greedy(model, params, toks, mask,
                                                     args.new_tokens).block_until_ready(),
                            repeats=args.repeats)
    same = np.array_equal(sampler(params, prompts, max_new_tokens=args.new_tokens).tokens,
                          np.asarray(no_cache_greedy(model, params, toks, mask, args.new_tokens)))
    hot = dict(max_new_tokens=args.new_tokens, sampling=SamplingConfig(1.0),
               rng=jax.random.key(1))
    plain = median_time(lambda: sampler(params, prompts, **hot), repeats=args.repeats)
    tool = median_time(lambda: tool_sampler(params, prompts, **hot), repeats=args.repeats)
    written = tool_sampler(params, prompts, **hot).tool_mask.sum()
    rows.append({"batch": b, "cache_tokens_per_s": b * args.new_tokens / cached,
                 "no_cache_tokens_per_s": b * args.new_tokens / recompute,
                 "speedup": recompute / cached, "identical_tokens": bool(same),
                 "tool_on_over_off": tool / plain, "tool_written_tokens": int(written)})
    r = rows[-1]
    print(f"batch {b:4d}: kv-cache {r['cache_tokens_per_s']:9.0f} tok/s   no-cache "
          f"{r['no_cache_tokens_per_s']:9.0f} tok/s   ratio {r['speedup']:.1f}x   "
          f"identical={same}   calculator on/off {r['tool_on_over_off']:.2f} "
          f"({written} tool tokens)", flush=True)
  result = {"device": device_name(), "config": args.config, "prompt_len": args.prompt_len,
            "new_tokens": args.new_tokens, "rows": rows}
  print(json.dumps(result, indent=2))
  write_result(args.out, result)


if __name__ == "__main__":
  main()
