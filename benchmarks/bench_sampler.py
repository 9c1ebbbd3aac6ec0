"""KV-cache sampler against a no-cache loop that recomputes the full forward pass.

  python benchmarks/bench_sampler.py [--config=configs/arith.py]

Both decode greedily from the same prompts for the same number of tokens; the no-cache
loop is jitted once over a fixed-size buffer (the fair version of recomputation). Decode
tokens per second and the ratio, measured in one run, at batch 1, 32 and 128. Also the
cost of the calculator tool (s2jax.calculator) as a ratio, tool on / tool off, both
sampling at temperature 1 with the same key: the weights are random, so every token is
given one character ('<', '=', digits, '+', '>') so that the random text opens and closes
annotations often, and the tool evaluates them and writes values.
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


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--config", default="configs/arith.py")
  ap.add_argument("--prompt_len", type=int, default=64)
  ap.add_argument("--new_tokens", type=int, default=32)
  ap.add_argument("--batches", default="1,32,128")
  ap.add_argument("--repeats", type=int, default=2)
  ap.add_argument("--out", default=None, help="also write the result as JSON here")
  args = ap.parse_args()
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
