"""The main job: every stage of the recipe in order on the synthetic task.

  python experiments/pipeline.py --config=configs/pipeline.py --workdir=workdirs/pipeline

Each block is the full config of one stage's script (configs/arith.py, verifier_arith.py,
distill_arith.py, ppo_arith.py, search_arith.py), sized so that the whole pipeline
finishes in well under 30 minutes on two CPU cores; override any key as usual, e.g.
`--config.sft.train.steps=2000 --config.ppo.train.iterations=40`. The pipeline fills in
the stage-to-stage paths (policy_workdir, prm_workdir) and gives every stage `seed`.

The SFT stage starts from the shipped base policy (s2jax/assets/arith_base: the planned
chain of thought with the calculator, trained once by configs/base_policy.py) and evaluates
it; `:scratch` trains SFT from scratch instead (cot, 500 steps: at the guessing floor).
`:tiny` is the seconds-long version for tests. `seeds()` is the sweep over seeds (one
pipeline job per point) that the ablations use.
"""
import ml_collections

from s2jax import config_blocks

# The training distribution of every stage; the shifted splits are in sft_config().
TASK = dict(min_steps=1, max_steps=4, min_distractors=0, max_distractors=2,
            ops=("add", "sub", "mul"), max_value=40, families=(0, 1))
MODEL = dict(d_model=128, n_layers=4, n_heads=4, n_kv_heads=2, mlp_dim=384)
EVAL_PROBLEMS = 150   # per split, the same problems for every stage's greedy accuracy
# `:eval500` (the ablations' pipelines): paired comparisons of two policies on 500 problems
# per split detect about a 5-point accuracy difference when ~20% of problems are discordant
# (s2jax.stats.minimum_detectable_effect(500, 0.2) = 0.056).
ABLATION_EVAL_PROBLEMS = 500
# The longest reference of any split is 191 tokens (shift_steps, 8 steps; 218 with a plan
# line): a shorter budget would measure truncation (tests/test_budgets.py checks it).
MAX_NEW = 240
CACHE = 640         # prompt bucket (up to 384 for shifted splits) + MAX_NEW


def _load(name, arg=""):
  return config_blocks.sibling(__file__, name, arg)


def sft_config():
  c = _load("arith.py")
  c.task.update(TASK)
  c.splits = dict(shift_steps=dict(min_steps=5, max_steps=8),
                  shift_templates=dict(families=(2,)),
                  shift_distractors=dict(min_distractors=4, max_distractors=6))
  c.data.update(num_train=8000, num_eval=EVAL_PROBLEMS, seq_len=320)
  c.model.update(MODEL)
  c.optim.update(lr=3e-3, warmup_steps=30, decay_steps=500)
  c.train.update(steps=500, batch_size=32, log_every=25, checkpoint_every=100)
  c.eval.update(batch_size=100, max_new_tokens=MAX_NEW, max_cache_len=CACHE)
  return c


def start_from_base(c) -> None:
  """The SFT stage starts from the shipped base policy (s2jax/assets/arith_base, trained
  by configs/base_policy.py: see results/testbed.md for why) and evaluates it on this
  seed's problems; 500 steps from scratch leave the policy at the guessing floor."""
  c.init_from = "arith_base"
  c.data.update(format="plan", tool_tokens="mask")
  c.eval.calculator = True
  c.train.steps = 0


def get_config(arg: str = ""):
  """`tiny`: seconds-long, for tests; `scratch`: SFT from scratch (cot, 500 steps) instead
  of the shipped base policy; `eval500`: greedy accuracy on 500 problems per split (the
  ablations)."""
  words = config_blocks.words(arg, ("tiny", "scratch", "eval500"), __file__)
  tiny = "tiny" in words
  c = ml_collections.ConfigDict()
  c.seed = 0
  # Which stages run, in this order; a stage needs the ones before it that it names:
  # verifier <- sft; distill <- sft, verifier; ppo <- sft, verifier; search <- ppo
  # (or the last policy stage run), verifier.
  c.stages = ("sft", "verifier", "distill", "ppo", "search")

  c.sft = sft_config()
  if "scratch" not in words:
    start_from_base(c.sft)

  c.verifier = _load("verifier_arith.py")
  # Held-out: 150 problems x 3 samples per split, so each class has the 100+ steps an
  # AUROC needs (s2jax.verifier_metrics.describe_auroc) even with mostly valid steps.
  # Training: the policy's own samples are what the PRM learns from (on seed 0, 3x the
  # samples raised held-out step AUROC 0.80 -> 0.86; 4x the corrupted references lowered
  # it to 0.77), so many samples, every one kept: `balance` drops all-valid chains, which
  # leaves mostly chains that go wrong and teaches "late steps are wrong" (0.72 -> 0.80
  # without it; see same_index_auroc in the report). On seed 1, 4000 problems x 4 gave
  # 0.889 against 0.895 here, and 1500 steps 0.895 (results/pipeline/prm_probes).
  c.verifier.samples.update(train_problems=2400, per_problem=4,
                            heldout_problems=EVAL_PROBLEMS, heldout_per_problem=3,
                            batch_size=128, max_new_tokens=MAX_NEW, max_cache_len=CACHE)
  c.verifier.labels.update(balance=False, corrupted_per_problem=1)
  c.verifier.data.update(seq_len=384)  # a long sample (240 new tokens) with its prompt
  c.verifier.train.update(steps=1000, batch_size=32, checkpoint_every=250)
  c.verifier.optim.update(decay_steps=1000)

  c.distill = _load("distill_arith.py")
  c.distill.rounds = 1
  c.distill.samples.update(problems=400, per_problem=4, batch_size=128,
                           max_new_tokens=MAX_NEW, max_cache_len=CACHE)
  c.distill.data.update(seq_len=320)
  c.distill.train.update(steps=100, batch_size=32)
  c.distill.eval.update(num_problems=EVAL_PROBLEMS, batch_size=100, max_new_tokens=MAX_NEW,
                        max_cache_len=CACHE)

  c.ppo = _load("ppo_arith.py")
  c.ppo.rollout.update(prompts=32, max_new_tokens=MAX_NEW, max_cache_len=CACHE)
  c.ppo.train.update(iterations=20, checkpoint_every=10)
  c.ppo.eval.update(every=0, num_problems=EVAL_PROBLEMS, batch_size=100,
                    max_new_tokens=MAX_NEW)

  c.search = _load("search_arith.py")
  c.search.num_problems = 50
  c.search.ns = (1, 4, 16)
  c.search.sampling.update(batch_size=128, max_new_tokens=MAX_NEW, max_cache_len=CACHE)
  # max_depth: 8 steps and the plan line, with one to spare.
  c.search.beam.update(budgets=(4,), max_depth=10, batch_size=128)
  # Which policy search runs on: the last of these stages that is in `stages`.
  c.search_policy = ("ppo", "distill", "sft")
  if "eval500" in words:
    n = ABLATION_EVAL_PROBLEMS
    c.sft.data.num_eval = n
    c.distill.eval.num_problems = n
    c.ppo.eval.num_problems = n
  if tiny:  # seconds-long, for tests: every stage's own tiny config
    for stage, name in (("sft", "arith.py"), ("verifier", "verifier_arith.py"),
                        ("distill", "distill_arith.py"), ("ppo", "ppo_arith.py"),
                        ("search", "search_arith.py")):
      c[stage] = _load(name, "tiny")
    # The default's chain-of-thought format and calculator, trained from scratch.
    c.sft.data.update(format="plan", tool_tokens="mask")
    c.sft.eval.calculator = True
    c.distill.rounds = 1
    c.ppo.recovery.fraction = 0.0
    c.search.beam.budgets = ()
  return c


def seeds(n: int = 3):
  """One pipeline per seed (the ablations' shared runs); launch one job per point."""
  return [(f"seed{s}", {"seed": s}) for s in range(n)]
