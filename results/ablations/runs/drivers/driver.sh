#!/usr/bin/env bash
# Runs issue-16 ablation points in order from the frozen worktree; each line of points.txt is
# "<ablation> <point>". A point already marked finished is skipped by the script itself.
set -u
cd /work/runs/wt
export PYTHONPATH=/work/runs/wt
PY=/work/main/.venv/bin/python
while read -r abl point; do
  [ -z "$abl" ] && continue
  echo "$(date -u +%FT%TZ) start $abl $point" >> /work/runs/log.txt
  $PY experiments/ablation.py --workdir=workdirs/ablations16 --config=configs/ablations/$abl.py --point=$point > /work/runs/logs/${abl}_${point//\//_}.log 2>&1
  echo "$(date -u +%FT%TZ) end $abl $point rc=$?" >> /work/runs/log.txt
done < /work/runs/points.txt
