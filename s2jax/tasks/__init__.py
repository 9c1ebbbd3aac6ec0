"""Reasoning tasks behind one interface (`base.Task`), chosen by name:
`tasks.get("arith")`, `tasks.for_config(config)`."""
from s2jax.tasks.base import Task, for_config, get, name_of, names, register

# Importing the task modules registers them.
from s2jax.tasks import arith_task as _arith_task  # noqa: E402,F401
from s2jax.tasks import gsm8k as _gsm8k  # noqa: E402,F401
