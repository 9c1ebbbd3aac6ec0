"""Seconds-long version of configs/arith.py, for tests and smoke runs."""
import importlib.util
import os


def get_config(arg: str = ""):
  spec = importlib.util.spec_from_file_location(
      "arith_default", os.path.join(os.path.dirname(os.path.abspath(__file__)), "arith.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config()
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
  return c
