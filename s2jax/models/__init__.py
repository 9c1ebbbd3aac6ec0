from s2jax.models.transformer import KVCache, ModelConfig, Output, Transformer, default_positions, forward

__all__ = ["KVCache", "ModelConfig", "Output", "Transformer", "default_positions", "forward"]
