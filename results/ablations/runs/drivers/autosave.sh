#!/usr/bin/env bash
# Every 10 minutes: the live issue-16 workdir's outputs into results/ablations/runs, committed
# alone (git commit -- <path>), so a session that dies keeps what finished.
cd /work/main
while true; do
  sleep 600
  [ -e .git/index.lock ] && continue
  PYTHONPATH=/work/main .venv/bin/python -c "
from s2jax import archive
r = archive.save('/work/runs/wt/workdirs/ablations16', 'results/ablations/runs')
print(len(r['added']), len(r['replaced']), len(r['merged_launches']))" >> /work/runs/autosave.log 2>&1
  git add results/ablations/runs >> /work/runs/autosave.log 2>&1
  git commit -q -m "Runs: issue-16 workdir outputs archived (s2jax.archive), $(date -u +%FT%TZ)" -- results/ablations/runs >> /work/runs/autosave.log 2>&1
done
