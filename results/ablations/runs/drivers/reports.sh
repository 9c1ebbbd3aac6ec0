#!/usr/bin/env bash
# Every ablation's report from the live workdir and the archive (seeds finished so far).
cd /work/main
. .venv/bin/activate
for a in rl_vs_sft distill_filters domain_shift filler_tokens working_memory verifier_budget; do
  echo "$(date -u +%FT%TZ) report $a"
  /usr/bin/time -f "$a %e s" python experiments/ablation.py --workdir=/work/runs/wt/workdirs/ablations16 --config=configs/ablations/$a.py --report_only --archive=results/ablations/runs --out=results/ablations/$a 2>&1 | tail -4
done
