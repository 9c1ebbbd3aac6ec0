"""On-policy RL against step-level verifiers.

  kernels      the jitted update: per-token log-probs and KL, losses, advantages, epochs x
               minibatches of the shared train step in one pure function
  advantages   advantage estimators by name (gae, grpo, rloo)
  losses       per-token policy losses by name (ppo_clip)
  rewards      reward sources by name (prm_steps, exact_outcome, orm), their placement
  rollouts     sampled responses in the update's layout; steps and where they end
  learner      the Learner: rollouts -> rewards -> update; KL control; hacking alarm

The names below are the ones callers use most.
"""
from s2jax.rl.advantages import gae, group_advantages, masked_whiten
from s2jax.rl.kernels import (ALGORITHMS, KL_ESTIMATORS, RLConfig, check_batch, kl_penalty,
                              make_update, response_logits_values, rl_loss, token_logprobs)
from s2jax.rl.losses import clipped_pg_loss, clipped_value_loss
from s2jax.rl.rewards import STEP_TRANSFORMS, place_rewards, step_reward
from s2jax.rl.rollouts import line_break_ids, response_steps, rollout
