from setuptools import find_packages, setup

setup(
    name="s2jax",
    version="0.1.0",
    description="System 2 reasoning in JAX: CoT SFT, step-level verifiers, "
                "verifier-filtered self-distillation, PPO and verifier-guided search.",
    packages=find_packages(include=["s2jax", "s2jax.*"]),
    # The shipped base policy (s2jax/base_policy.py): weights, tokenizer, policy.json.
    # The GSM8K release (s2jax/assets/gsm8k, MIT).
    package_data={"s2jax": ["assets/*/*"]},
    python_requires=">=3.10",
    install_requires=[
        "jax>=0.4.35",
        "flax>=0.10",
        "optax>=0.2.4",
        "orbax-checkpoint>=0.11",
        "ml-collections>=1.0",
        "sentencepiece>=0.2",
        "absl-py",
        "numpy",
        "scipy",
        "tqdm",
        "matplotlib",
        # Pretrained checkpoints and their tokenizers (s2jax.models.convert, tokenizers).
        "gguf>=0.10",
        "safetensors>=0.4",
        "tokenizers>=0.19",
        "jinja2>=3.1",
        # GSM8K as a TFDS dataset, built from local files and read as array_record with no
        # TensorFlow (s2jax.data.gsm8k_tfds); TFDS imports importlib_resources without
        # declaring it.
        "tensorflow-datasets>=4.9",
        "array-record>=0.5",
        "importlib_resources",
        # The training batch order (s2jax.data.batches.batch_order).
        "grain>=0.2.10",
    ],
    extras_require={
        # transformers on PyTorch is the independent reference the parity tests compare to.
        # pytest-xdist: the suite runs on two workers (pytest.ini); filelock lets them share
        # the one tiny pipeline run.
        # torch is pinned so that pip picks the CPU build (2.13.0+cpu) where the package
        # index offers one, instead of the newest release's multi-gigabyte CUDA build.
        "test": ["pytest>=8", "pytest-xdist>=3.5", "filelock>=3.12", "hypothesis>=6.100",
                 "torch==2.13.0", "transformers>=4.46", "accelerate>=0.26"],
    },
)
