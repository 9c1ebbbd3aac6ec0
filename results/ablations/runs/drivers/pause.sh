#!/usr/bin/env bash
# pause.sh stop|cont <reason>: SIGSTOP the issue-16 run processes (pids kept in paused.pids)
# or SIGCONT the ones stopped; logged in log.txt.
if [ "$1" = stop ]; then
  pids=$(pgrep -f "/work/runs/wt|workdirs/ablations16" | tr '\n' ' ')
  echo "$pids" > /work/runs/paused.pids; sig=STOP
else
  pids=$(cat /work/runs/paused.pids); sig=CONT
fi
shift
for p in $pids; do kill -$sig $p 2>/dev/null; done
echo "$(date -u +%FT%TZ) $sig runs ($pids): $*" >> /work/runs/log.txt
