"""The README's two commands are what CI and the fresh-clone measurement run."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme_commands():
  text = open(os.path.join(ROOT, "README.md")).read()
  block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
  return block.strip().splitlines()


def test_ci_runs_the_readme_test_command_verbatim():
  main, test = readme_commands()
  assert main.startswith("pip install -e . && python experiments/pipeline.py")
  assert test.endswith("python -m pytest -q tests")
  ci = [l for l in open(os.path.join(ROOT, ".ci", "run")).read().splitlines()
        if l and not l.startswith("#")]
  assert ci[-1] == test
