"""s2jax: the System 2 reasoning recipe in JAX."""
__version__ = "0.1.0"
