"""One `run(config, workdir)` per stage of the recipe: sft, verifier, distill, rl (PPO and
its variants), search, and eval_gsm8k for pretrained checkpoints."""
