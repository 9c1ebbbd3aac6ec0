"""Default verifier: a PRM on the SFT policy's own samples with exact step labels.

  python experiments/train_verifier.py --config=configs/verifier_arith.py \
      --config.policy_workdir=workdirs/sft --workdir=workdirs/prm

Sweeps are lists of overrides (`label_sources()` below); launch one job per point, e.g.
  python experiments/sweep.py --config=configs/verifier_arith.py --sweep=label_sources \
      --script=experiments/train_verifier.py --workdir_root=workdirs/labels \
      -- --config.policy_workdir=workdirs/sft
"""
import ml_collections

from s2jax import config_blocks


def get_config(arg: str = ""):
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.policy_workdir = ""      # SFT workdir: tokenizer, data splits, checkpoints (required)
  c.policy_step = -1         # policy checkpoint; -1 = latest
  c.kind = "prm"             # prm (score per step) | orm (score per solution)
  c.init_from_policy = True  # start the trunk from the policy's weights

  # Policy samples: `train_problems` problems of the policy's train split, `per_problem`
  # samples each; held-out samples from the evaluation splits measure the verifier.
  # Both are cached in <policy_workdir>/samples and shared by every verifier run.
  c.samples = dict(train_problems=1000, per_problem=4, heldout_problems=150,
                   heldout_per_problem=4, temperature=0.8, top_k=0, top_p=1.0,
                   batch_size=128, max_new_tokens=192, max_cache_len=576)
  # source: exact | annotation | mc. MC: `mc_rollouts` completions per step prefix are
  # drawn once (cached); a run labels with the first `mc_k` of them, hard or soft.
  # max_solutions > 0 labels only that many policy samples (MC rollouts are costly).
  # dedupe: identical samples of a problem become one record.
  # corruption_kinds: the errors planted in corrupted references (s2jax.tasks.arith:
  # arithmetic, operand, skip, relation, distractor, parent, and plan for the planned
  # format); () is the task's default mix.
  c.labels = dict(source="exact", mc_k=4, mc_rollouts=4, mc_mode="hard",
                  mc_temperature=0.8, mc_max_new_tokens=128, max_solutions=0,
                  corrupted_per_problem=1, balance=True, dedupe=False, corruption_kinds=())

  # > 0 (PRM): add this weight times a pairwise loss that ranks each problem's right
  # samples above its wrong ones (by their lowest step score), with a problem's samples
  # batched together (s2jax.verifier.within_problem_ranking).
  c.ranking_weight = 0.0
  c.model = dict(scalar_head=True, lm_head=False)  # overrides on the policy's model
  c.data = dict(seq_len=384, pad_multiple=32, max_steps=16, bucket_window=16)
  c.optim = config_blocks.optim(lr=1e-3, warmup_steps=20, decay_steps=400)
  c.train = dict(steps=400, batch_size=16, grad_accum=1, log_every=25, checkpoint_every=100,
                 keep_checkpoints=2)
  c.eval = dict(score_batch_size=64, threshold=0.5)

  config_blocks.runtime(c)
  variants = config_blocks.words(arg, ("tiny", "pack"), __file__)
  if "pack" in variants:
    # A step's records packed into rows of seq_len instead of padded to the longest (the
    # same summed loss: tests/test_verifier.py); a variant, so existing workdirs' recorded
    # configs stay what they were.
    c.data.pack = True
  if "tiny" in variants:  # seconds-long, for tests
    c.samples.update(train_problems=8, per_problem=2, heldout_problems=4, heldout_per_problem=2,
                     batch_size=16, max_new_tokens=48, max_cache_len=448)
    c.labels.update(mc_k=2, mc_rollouts=2, mc_max_new_tokens=32)
    c.optim.update(warmup_steps=1, decay_steps=4)
    c.train.update(steps=4, batch_size=8, log_every=2, checkpoint_every=2)
    c.eval.update(score_batch_size=16)
  return c


def label_sources():
  """Which label source (and how many MC rollouts K) gives which PRM, at equal data: the
  same 400 policy samples, no corrupted references, so the labels alone differ."""
  # balance off: balancing drops a different share of records under each source's labels
  # (MC labels are mostly "valid"), which made the training sets differ ~7x in steps.
  same = {"labels.max_solutions": 400, "labels.corrupted_per_problem": 0,
          "labels.balance": False, "train.steps": 150, "optim.decay_steps": 150}
  points = [("exact", {"labels.source": "exact"}),
            ("annotation", {"labels.source": "annotation"})]
  points += [(f"mc_k{k}_hard", {"labels.source": "mc", "labels.mc_k": k, "labels.mc_mode": "hard"})
             for k in (1, 2, 4)]
  points += [("mc_k4_soft", {"labels.source": "mc", "labels.mc_k": 4, "labels.mc_mode": "soft"})]
  return [(name, {**same, **o}) for name, o in points]
