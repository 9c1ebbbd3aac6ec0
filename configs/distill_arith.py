"""Verifier-filtered self-distillation on the synthetic task (STaR / ReST-EM style).

  python experiments/self_distill.py --config=configs/distill_arith.py \
      --config.policy_workdir=workdirs/sft --config.prm_workdir=workdirs/prm \
      --workdir=workdirs/distill/prm_topk

One job per filter (the sweep below; `random` keeps as many samples as `prm_topk`):
  python experiments/sweep.py --config=configs/distill_arith.py --sweep=filters \
      --script=experiments/self_distill.py --workdir_root=workdirs/distill \
      -- --config.policy_workdir=workdirs/sft --config.prm_workdir=workdirs/prm
"""
import ml_collections

from s2jax import config_blocks


def get_config(arg: str = ""):
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.policy_workdir = ""   # the SFT policy (round 0)
  c.prm_workdir = ""      # needed by the prm_* filters and by random matching a prm filter
  c.rounds = 2
  # kind: prm_threshold | prm_topk | correct | random | all (s2jax.distill). Solution score =
  # the PRM step scores aggregated by `aggregation` (min | prod | last). size_of: a filter
  # whose count caps this one's (comparisons at matched data size), "" for none.
  c.filter = dict(kind="prm_topk", threshold=0.5, top_k=1, match="prm_topk", aggregation="min",
                  size_of="")
  c.samples = dict(problems=300, per_problem=4, temperature=0.8, batch_size=128,
                   max_new_tokens=192, max_cache_len=576)
  c.finetune = dict(init="base")  # base: every round starts from the SFT weights (ReST-EM)
  c.data = dict(seq_len=384, pad_multiple=32, bucket_window=8, tool_tokens="train")
  c.optim = config_blocks.optim(lr=2e-4, warmup_steps=10, decay_steps=100)
  c.train = dict(steps=100, batch_size=16, grad_accum=1, log_every=25, checkpoint_every=100,
                 keep_checkpoints=1)
  c.eval = dict(num_problems=100, batch_size=100, max_new_tokens=192, max_cache_len=576)
  c.score_batch_size = 64
  config_blocks.runtime(c)
  if "tiny" in config_blocks.words(arg, ("tiny",), __file__):  # seconds-long, for tests
    c.rounds = 2
    c.samples.update(problems=4, per_problem=2, batch_size=8, max_new_tokens=32,
                     max_cache_len=448)
    c.optim.update(warmup_steps=1, decay_steps=3)
    c.train.update(steps=3, batch_size=4, log_every=1, checkpoint_every=3)
    c.eval.update(num_problems=4, batch_size=4, max_new_tokens=32, max_cache_len=448)
    c.score_batch_size = 8
  return c


def filters():
  """The filters of issue #4 and the paper's control: PRM top-1 per problem, answer
  correctness (STaR), and random samples of the PRM filter's size."""
  return [("prm_topk", {"filter.kind": "prm_topk"}),
          ("correct", {"filter.kind": "correct"}),
          ("random", {"filter.kind": "random", "filter.match": "prm_topk"})]
