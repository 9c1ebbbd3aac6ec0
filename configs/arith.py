"""Default experiment: CoT SFT on the synthetic multi-step arithmetic task.

Trains on 2-4 step problems from template families 0 and 1 with up to 2 distractors;
evaluates in-distribution and on three shifted splits (longer chains, an unseen template
family, more distractors). Sized to finish SFT in well under 15 minutes on 2 CPU cores.
"""
import ml_collections

from s2jax import config_blocks


def get_config(arg: str = ""):
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.task = dict(name="arith", min_steps=2, max_steps=4, min_distractors=0, max_distractors=2,
                ops=("add", "sub", "mul", "div", "sum"), max_value=40, families=(0, 1))
  # Shifted splits: each entry overrides c.task.
  c.splits = dict(
      shift_steps=dict(min_steps=5, max_steps=8),
      shift_templates=dict(families=(2,)),
      shift_distractors=dict(min_distractors=4, max_distractors=6),
  )

  # bucket_window: batches drawn from a pool of that many, sorted by length (less padding).
  # format: what the policy learns to write before the answer, cot | plan | direct | filler.
  # tool_tokens: train | mask (keep the values the calculator tool writes out of the loss).
  c.data = dict(num_train=20000, num_eval=150, seq_len=384, pad_multiple=32, bucket_window=16,
                format="cot", tool_tokens="train")
  c.tokenizer = dict(path="", vocab_size=512, corpus_size=5000)
  # A shipped base policy to start from (s2jax/base_policy.py; its model and tokenizer
  # replace the blocks here), or "" to train from scratch.
  c.init_from = ""

  c.model = dict(vocab_size=512, d_model=256, n_layers=4, n_heads=4, n_kv_heads=2,
                 mlp_dim=768, head_dim=None, rope_theta=10000.0, norm_eps=1e-5,
                 tie_embeddings=True, qkv_bias=False, lm_head=True, scalar_head=False,
                 dtype="float32", param_dtype="float32", remat="none", init_std=0.02,
                 # All 4 layers as straight-line code: 1.09x a train step on CPU, the same
                 # compile time (results/bench_train_variants.json).
                 scan_unroll=0)

  c.optim = config_blocks.optim(lr=1e-3, warmup_steps=50, decay_steps=800, weight_decay=0.1)
  c.train = dict(steps=800, batch_size=16, grad_accum=1, log_every=25, eval_every=0,
                 checkpoint_every=250, keep_checkpoints=3)
  # calculator: every sampler of this policy (evaluation, later stages) writes the value of
  # each <<expr= for it (s2jax.calculator); pair it with data.tool_tokens="mask".
  # train.eval_every > 0: a learning curve on the first eval.curve_problems test problems.
  c.eval = dict(enabled=True, batch_size=100, max_new_tokens=192, max_cache_len=576,
                calculator=False, curve_problems=150)

  config_blocks.runtime(c)
  variants = config_blocks.words(arg, ("tiny", "pack"), __file__)
  if "pack" in variants:
    # A step's examples packed into rows of seq_len instead of padded (the same summed
    # loss; train.lm_batches). A variant, not a default key, so that workdirs trained
    # before it keep matching their recorded configs.
    c.data.pack = True
  if "tiny" in variants:
    tiny(c)
  return c


def tiny(c) -> None:
  """Seconds-long, for tests and smoke runs."""
  c.task.max_steps = 3
  c.task.max_distractors = 1
  c.splits = dict(shift_steps=dict(min_steps=4, max_steps=5))
  c.data.num_train = 256
  c.data.num_eval = 16
  c.data.seq_len = 384
  c.tokenizer.corpus_size = 300
  c.tokenizer.vocab_size = 512
  c.model.update(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, mlp_dim=64)
  c.optim.update(warmup_steps=2, decay_steps=20)
  c.train.update(steps=6, batch_size=8, log_every=2, checkpoint_every=2, keep_checkpoints=2)
  c.eval.update(batch_size=16, max_new_tokens=48, max_cache_len=448)
