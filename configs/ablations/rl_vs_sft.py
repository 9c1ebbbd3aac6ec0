"""Ablation 1: verifier + RL against plain fine-tuning at matched training compute.

  python experiments/ablation.py --config=configs/ablations/rl_vs_sft.py \
      --workdir=workdirs/ablations --out=results/ablations/rl_vs_sft

Arms, per seed, all from the seed's SFT policy:
  ppo_prm      the pipeline's verifier + PPO (PRM step rewards + exact outcome)
  sft_more     more next-token training on the reference solutions, for as many
               token-passes as the verifier (sampling + training) and PPO cost together
  ppo_outcome  PPO with the exact outcome reward only (RL without the verifier)
"""
from s2jax import config_blocks

ARMS = ("ppo_prm", "sft_more", "ppo_outcome")


def get_config(arg: str = ""):
  c = config_blocks.ablation(__file__, arg)  # seeds and the shared pipeline
  c.arms = ARMS
  # sft_more: fine-tuning from the SFT weights on the policy's own training split; the
  # step count is set from the compute of the seed's verifier + PPO (s2jax.compute).
  c.finetune = dict(lr=2e-4, warmup_steps=10, batch_size=32)
  return c


def points(c):
  """One job per (seed, arm); ppo_prm is the shared pipeline run of the seed."""
  return [f"seed{s}/{arm}" for s in c.seeds for arm in c.arms]
