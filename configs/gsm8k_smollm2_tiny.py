"""configs/gsm8k_smollm2.py shrunk to a CPU smoke run: a slice of GSM8K, a few steps, short
generations. The model is still the real SmolLM2-135M-Instruct."""
import importlib.util
import os


def get_config(arg: str = ""):
  spec = importlib.util.spec_from_file_location(
      "gsm8k_smollm2", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                    "gsm8k_smollm2.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config(arg)
  if arg == "verifier":
    c.samples.update(train_problems=2, per_problem=2, heldout_problems=2, heldout_per_problem=1,
                     batch_size=4, max_new_tokens=16, max_cache_len=512)
    c.labels.update(mc_k=1, mc_rollouts=1, mc_max_new_tokens=8, balance=False)
    c.train.update(steps=1, batch_size=8, log_every=1, checkpoint_every=1)
    c.optim.update(warmup_steps=1, decay_steps=2)
    c.eval.update(score_batch_size=4)
    return c
  if arg == "distill":
    c.rounds = 1
    c.filter.update(kind="prm_topk")
    c.samples.update(problems=2, per_problem=2, batch_size=4, max_new_tokens=16,
                     max_cache_len=512)
    c.train.update(steps=1, batch_size=8, log_every=1, checkpoint_every=1)
    c.optim.update(warmup_steps=1, decay_steps=2)
    c.eval.update(num_problems=2, batch_size=4, max_new_tokens=16, max_cache_len=512)
    c.score_batch_size = 4
    return c
  if arg == "ppo":
    c.rl.update(epochs=1, minibatches=1)
    c.rollout.update(prompts=2, train_problems=16, max_new_tokens=16, max_cache_len=512)
    c.train.update(iterations=1, checkpoint_every=1)
    c.eval.update(every=1, num_problems=2, batch_size=2, max_new_tokens=16)
    c.score_batch_size = 4
    return c
  c.data.update(num_train=16, num_eval=4, seq_len=512)
  c.train.update(steps=2, batch_size=8, log_every=1, checkpoint_every=2, keep_checkpoints=1)
  c.optim.update(warmup_steps=1, decay_steps=2)
  c.eval.update(batch_size=4, max_new_tokens=16, max_cache_len=512, chunk=4)
  return c
