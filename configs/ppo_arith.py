"""On-policy RL from the SFT policy on the synthetic task.

  python experiments/ppo.py --config=configs/ppo_arith.py \
      --config.policy_workdir=workdirs/sft --config.prm_workdir=workdirs/prm \
      --workdir=workdirs/ppo_step

Variants (the `variants()` sweep): PPO with PRM step rewards plus the exact outcome (the
default), PPO with the outcome only, GRPO with the outcome only.
"""
import ml_collections

from s2jax import config_blocks


def get_config(arg: str = ""):
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.policy_workdir = ""    # the SFT policy: initial weights and the frozen KL reference
  c.policy_step = -1
  c.prm_workdir = ""       # step rewards; also monitored when they carry no weight
  c.orm_workdir = ""       # for rewards.outcome="orm"
  # s2jax.rl.RLConfig. group_size > 1 samples each prompt several times (grpo/rloo need it).
  c.rl = dict(algorithm="ppo", group_size=1, epochs=2, minibatches=2, clip_eps=0.2,
              value_clip=0.2, vf_coef=0.5, entropy_coef=0.0, gamma=1.0, gae_lambda=0.95,
              kl_estimator="k1", whiten_advantages=True, kl_in="",
              # The update on packed rows: several rollouts to a row, no prompt padding or
              # empty response slots (s2jax.rl.kernels). The same loss on the same tokens;
              # minibatches are whole packed rows.
              pack=True)
  # value: its own copy of the policy trunk with a scalar head, or the policy's trunk with
  # a second head (shared_trunk, one forward pass for both).
  c.value = dict(shared_trunk=True)
  # Step rewards: transform of P(step correct) on each step's end-of-step token; "delta"
  # (the change in P from the step before, summing to P(last) - 1) does not pay for extra
  # steps, "centered" (P - 0.5) does (s2jax.rl.rewards.step_reward).
  # Outcome: exact checker (1/0) | orm (P(correct)) | none, on the last token.
  c.rewards = dict(step_weight=1.0, step_transform="delta", outcome="exact",
                   outcome_weight=1.0)
  # Per-token KL to the reference in the reward; target > 0 adapts the coefficient.
  c.kl = dict(coef=0.05, target=0.0, horizon=10000)
  c.rollout = dict(prompts=32, train_problems=5000, temperature=1.0, top_k=0, top_p=1.0,
                   max_new_tokens=160, max_cache_len=576,
                   # How many response widths (halvings of max_new_tokens) the update is
                   # compiled for; 0: one when rl.pack (packed rows skip empty slots), else 3.
                   response_widths=0,
                   # Dynamic sampling (DAPO) for grpo/rloo: up to this many draws of
                   # `prompts` problems per iteration, until `prompts` groups with mixed
                   # outcomes fill the batch; 1: one draw, every group kept.
                   max_draws=1)
  # Error recovery: this fraction of each iteration's prompts start after a wrong step.
  c.recovery = dict(fraction=0.0, source="corrupted", eval_problems=100)
  # Reward-hacking alarm: reward up and exact accuracy down, each beyond its noise
  # (one-sided Welch tests at `alpha`), last `window` iterations against the ones before.
  c.hacking = dict(window=5, alpha=0.05)
  c.optim = config_blocks.optim(lr=5e-5, warmup_steps=5, decay_steps=400, final_lr_fraction=1.0,
                                schedule="constant")
  c.train = dict(iterations=40, checkpoint_every=10, keep_checkpoints=2)
  c.eval = dict(every=20, num_problems=100, batch_size=100, max_new_tokens=192)
  c.score_batch_size = 64
  config_blocks.runtime(c)
  if "tiny" in config_blocks.words(arg, ("tiny",), __file__):  # seconds-long, for tests
    c.rl.update(epochs=1, minibatches=2)
    c.rollout.update(prompts=4, train_problems=16, max_new_tokens=32, max_cache_len=448)
    c.recovery.update(fraction=0.5, eval_problems=2)
    c.hacking.update(window=2)
    c.train.update(iterations=2, checkpoint_every=1)
    c.eval.update(every=2, num_problems=4, batch_size=4, max_new_tokens=32)
    c.score_batch_size = 8
  return c


def variants():
  """The runs of issue #4: step + outcome rewards, outcome only, GRPO (outcome only), and
  step + outcome rewards with a quarter of the prompts starting after the policy's own
  wrong step (error-recovery practice)."""
  return [("ppo_step", {}),
          ("ppo_outcome", {"rewards.step_weight": 0.0}),
          ("grpo", {"rewards.step_weight": 0.0, "rl.algorithm": "grpo", "rl.group_size": 4,
                    "rollout.prompts": 8}),
          ("ppo_step_recovery", {"recovery.fraction": 0.25, "recovery.source": "sampled"})]
