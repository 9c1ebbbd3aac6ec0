#!/usr/bin/env bash
# As driver.sh, after the point now running (pid $1; 0 for none) ends, over the points in $2
# (default points2.txt), with JAX's persistent compilation
# cache shared by every point (the same programs compile once: compiled code is the same).
set -u
while [ "$1" != 0 ] && kill -0 "$1" 2>/dev/null; do sleep 20; done
cd /work/runs/wt
export PYTHONPATH=/work/runs/wt
export JAX_COMPILATION_CACHE_DIR=/work/runs/xla_cache
PY=/work/main/.venv/bin/python
while read -r abl point; do
  [ -z "$abl" ] && continue
  echo "$(date -u +%FT%TZ) start $abl $point (driver2)" >> /work/runs/log.txt
  $PY experiments/ablation.py --workdir=workdirs/ablations16 --config=configs/ablations/$abl.py --point=$point > /work/runs/logs/${abl}_${point//\//_}.log 2>&1
  echo "$(date -u +%FT%TZ) end $abl $point rc=$?" >> /work/runs/log.txt
done < "${2:-/work/runs/points2.txt}"
