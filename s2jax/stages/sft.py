"""Chain-of-thought SFT, then evaluation on every split.

  python experiments/sft.py --config=configs/arith.py --workdir=workdirs/sft
  python experiments/sft.py --config=configs/gsm8k_smollm2.py --workdir=workdirs/gsm8k_sft

The synthetic task trains a model from scratch with its own tokenizer; a config with
`data.source` "jsonl"/"tfds" trains on GSM8K, starting from `pretrained.path` (its weights,
vocabulary and the config's prompt format).

Re-running with the same workdir resumes from the latest checkpoint. The workdir holds
the tokenizer, the generated splits (GSM8K-format JSONL), checkpoints, metrics.jsonl and
eval/ (per-problem outputs and summary.json).
"""
from __future__ import annotations

import json
import os


import jax

from s2jax import base_policy, evaluation, pretrained, report, sharding, tasks
from s2jax import train as train_lib
from s2jax.config import model_config, validate_train_config
from s2jax.data import batches, formats, gsm8k
from s2jax.metrics import MetricWriter
from s2jax.models.transformer import Transformer
from s2jax.tokenizers import SentencePieceTokenizer, train_sentencepiece


def prepare_gsm8k(config, workdir: str):
  """Copy the GSM8K slice into the workdir (later stages read their splits there) and load
  the pretrained checkpoint's tokenizer with the config's prompt format."""
  paths = {}
  for name in ("train", "test"):
    paths[name] = os.path.join(workdir, "data", f"{name}.jsonl")
    if not os.path.exists(paths[name]) and jax.process_index() == 0:
      gsm8k.write_jsonl(paths[name], pretrained.gsm8k_records(config, name))
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices("s2jax_prepare_gsm8k")
  return paths, pretrained.tokenizer_for(config, gsm8k.read_jsonl(paths["train"]))


def prepare_data(config, workdir: str):
  """Generate (or reuse) the splits and the tokenizer, stored in the workdir."""
  if pretrained.is_gsm8k(config):
    return prepare_gsm8k(config, workdir)
  data_dir = os.path.join(workdir, "data")
  task = tasks.for_config(config)
  paths = {}
  for name, n in [("train", config.data.num_train)] + [
      (s, config.data.num_eval) for s in task.eval_split_names(config)]:
    path = os.path.join(data_dir, f"{name}.jsonl")
    if not os.path.exists(path) and jax.process_index() == 0:
      gsm8k.write_jsonl(path, (task.to_json(p) for p in task.generate_split(config, name, n)))
    paths[name] = path
  tok_path = config.tokenizer.path or os.path.join(workdir, "tokenizer.model")
  if not os.path.exists(tok_path) and jax.process_index() == 0:
    train_recs = gsm8k.read_jsonl(paths["train"])[: config.tokenizer.corpus_size]
    # The plan format's first line is part of what the tokenizer should know.
    plan = config.data.get("format", "cot") == "plan"
    train_sentencepiece([r["question"] + "\n" + (target_text(task, r, "plan") if plan
                                                 else r["answer"]) for r in train_recs],
                        tok_path[: -len(".model")], config.tokenizer.vocab_size)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices("s2jax_prepare_data")
  return paths, SentencePieceTokenizer(tok_path)


def target_text(task, record: dict, fmt: str, tokenizer=None) -> str:
  """What the policy learns to write for a record in format `fmt` (s2jax/data/formats.py)."""
  plan = task.plan(task.from_json(record)) if fmt == "plan" else ""
  return formats.solution_text(record["answer"], fmt, tokenizer, plan=plan)


def build_model(config, tokenizer) -> Transformer:
  cfg = model_config(config.model, vocab_size=tokenizer.vocab_size)
  return Transformer(cfg)


def training_examples(config, records, tokenizer) -> list:
  """The next-token examples of an SFT config's records: its target format (cot | plan |
  direct | filler, s2jax/data/formats.py) and its handling of calculator tokens. Anything
  that trains a policy further on reference solutions uses these, so it trains on what
  the policy was trained on."""
  fmt = config.data.get("format", "cot")
  task = tasks.for_config(config)
  return [batches.encode_example(tokenizer, r["question"], target_text(task, r, fmt, tokenizer),
                                 config.data.get("tool_tokens", "train"))
          for r in records]


def run(config, workdir: str) -> dict:
  validate_train_config(config)
  sharding.initialize_distributed(config.distributed)
  os.makedirs(workdir, exist_ok=True)
  init_params = None  # weights to start from, loaded only if no checkpoint is resumed
  if "pretrained" in config:
    # The checkpoint defines the model; the config's overrides (dtype, remat) apply on top.
    # Written into config.json, so later stages rebuild the same model from the workdir.
    model_cfg, host_params = pretrained.load_host(config)
    init_params = lambda: host_params  # noqa: E731
    config.model = pretrained.model_dict(model_cfg)
    config.tokenizer.path = os.path.abspath(config.tokenizer.get("path", "")
                                            or pretrained.checkpoint_path(config))
  if config.get("init_from", ""):
    # A shipped base policy (s2jax/base_policy.py): its model, tokenizer and weights.
    init_params = base_policy.apply(config).host_params
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2))
  report.write_run_info(workdir)
  paths, tokenizer = prepare_data(config, workdir)
  model = build_model(config, tokenizer)
  mesh = sharding.make_mesh(config.mesh.shape)
  t = config.train
  shards = mesh.shape["data"] * mesh.shape["fsdp"]
  if t.batch_size % (shards * t.grad_accum):
    raise ValueError(f"config: train.batch_size={t.batch_size} must be divisible by "
                     f"data*fsdp*grad_accum = {shards}*{t.grad_accum}")

  examples = training_examples(config, gsm8k.read_jsonl(paths["train"]), tokenizer)
  batches.check_lengths(examples, config.data.seq_len, paths["train"])

  job = train_lib.setup_job(model, train_lib.next_token_loss, config, workdir, mesh,
                            init_params=init_params)
  state, ckpt = job.state, job.ckpt
  start = int(state.step)
  writer = MetricWriter(workdir)
  writer.write(start, event="start", processes=jax.process_count(), devices=jax.device_count(),
               mesh=dict(mesh.shape))
  batch_at = train_lib.lm_batches(examples, tokenizer, mesh, batch_size=t.batch_size,
                                 seed=config.seed, pad_multiple=config.data.pad_multiple,
                                 seq_len=config.data.seq_len,
                                 bucket_window=config.data.bucket_window,
                                 pack=config.data.get("pack", False), grad_accum=t.grad_accum)

  curve = learning_curve(config, workdir, model, tokenizer, paths, mesh, writer)
  if t.get("eval_every", 0) and start == 0 and init_params is not None:
    curve(0, state)  # where a run from given weights starts: its curve's first point
  state = train_lib.fit(state, job.step_fn, batch_at, steps=t.steps, ckpt=ckpt, writer=writer,
                        log_every=t.log_every, desc="sft", every=t.get("eval_every", 0),
                        on_every=curve)
  ckpt.close()

  summaries = {}
  if config.eval.get("enabled", True):
    summaries = evaluate_all(config, workdir, model, state.params, tokenizer, paths, mesh)
    writer.write(t.steps, **{f"eval/{k}/accuracy": v["accuracy"] for k, v in summaries.items()},
                 **{f"eval/{k}/fully_valid": v["fully_valid"] for k, v in summaries.items()})
  return {"final_step": int(state.step), "eval": summaries}


def learning_curve(config, workdir, model, tokenizer, paths, mesh, writer):
  """`on_every` for `train.fit`: greedy accuracy and fully valid chains on the first
  `eval.curve_problems` in-distribution test problems, overall and by number of steps,
  written to metrics.jsonl as `curve/...` (what results/testbed.md plots), and with the
  per-problem outcomes to curve/step<N>.json."""
  sampler = pretrained.sampler_for(model, tokenizer, config)
  records = gsm8k.read_jsonl(paths["test"])[: config.eval.get("curve_problems", 0) or None]
  task = tasks.for_config(config)
  bsh = sharding.batch_sharding(mesh, 2, config.eval.batch_size)

  def on_every(step, state):
    _, s = evaluation.evaluate_records(
        sampler, state.params, tokenizer, records, task=task,
        batch_size=config.eval.batch_size, max_new_tokens=config.eval.max_new_tokens,
        desc=f"curve@{step}", batch_sharding=bsh)
    writer.write(step, **curve_metrics(s))
    if jax.process_index() == 0:
      # Problem by problem, so two points of the curve compare pairwise (s2jax.stats).
      os.makedirs(os.path.join(workdir, "curve"), exist_ok=True)
      with open(os.path.join(workdir, "curve", f"step{step}.json"), "w") as f:
        json.dump({"step": step, **s}, f)
  return on_every


def curve_metrics(summary: dict) -> dict:
  out = {"curve/n": summary["n"], "curve/accuracy": summary["accuracy"],
         "curve/fully_valid": summary["fully_valid"]}
  for k, v in summary["by_num_steps"].items():
    out.update({f"curve/steps{k}/accuracy": v["accuracy"],
                f"curve/steps{k}/fully_valid": v["fully_valid"], f"curve/steps{k}/n": v["n"]})
  return out


def evaluate_all(config, workdir, model, params, tokenizer, paths, mesh) -> dict:
  sampler = pretrained.sampler_for(model, tokenizer, config)
  bsh = sharding.batch_sharding(mesh, 2, config.eval.batch_size)
  task = tasks.for_config(config)
  records = {name: gsm8k.read_jsonl(paths[name]) for name in task.eval_split_names(config)}
  summaries, per_problem = evaluation.evaluate_splits(
      sampler, params, tokenizer, records, task=task, batch_size=config.eval.batch_size,
      max_new_tokens=config.eval.max_new_tokens, batch_sharding=bsh)
  if jax.process_index() == 0:
    for name, results in per_problem.items():
      gsm8k.write_jsonl(os.path.join(workdir, "eval", f"{name}.jsonl"), results)
    with open(os.path.join(workdir, "eval", "summary.json"), "w") as f:
      json.dump(summaries, f, indent=2)
  return summaries
