"""Data sources and batching."""
