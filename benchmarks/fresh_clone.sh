#!/usr/bin/env bash
# The README's two commands as a newcomer runs them: each in its own fresh clone of the
# repository, in an empty directory (nothing else beside it), with a fresh virtual
# environment. Appends one JSON line per command (command, commit, exit status, wall time,
# what `git status` shows afterwards) to the output file.
#
#   bash benchmarks/fresh_clone.sh <repository> <commit> <output.jsonl> [test|main ...]
set -u
repo=$(cd "$1" && pwd); commit=$2; out=$(realpath -m "$3"); shift 3
if [ $# -eq 0 ]; then which=(test main); else which=("$@"); fi
mkdir -p "$(dirname "$out")"
for w in "${which[@]}"; do
  case $w in main) n=1 ;; test) n=2 ;; *) echo "unknown command $w (main or test)"; exit 2 ;; esac
  dir=$(mktemp -d /tmp/fresh_clone_XXXX)
  git clone -q "$repo" "$dir/s2jax" && cd "$dir/s2jax" && git checkout -q "$commit" || exit 1
  line=$(awk '/^```bash/ {k++; next} k == 1 && /^```/ {exit} k == 1 {print}' README.md | sed -n ${n}p)
  python3 -m venv .venv
  log="${out%.jsonl}_$w.log"
  start=$(date +%s)
  # shellcheck disable=SC1091
  (source .venv/bin/activate && eval "$line") > "$log" 2>&1
  rc=$?
  seconds=$(( $(date +%s) - start ))
  status=$(git status --porcelain | head -20 | tr '\n' ';')
  python3 - "$out" "$w" "$line" "$commit" "$rc" "$seconds" "$status" "$dir" "$log" <<'EOF'
import json, sys, time
out, which, line, commit, rc, seconds, status, where, log = sys.argv[1:]
tail = open(log, errors="replace").read().strip().splitlines()[-3:]
with open(out, "a") as f:
  f.write(json.dumps({"which": which, "command": line, "commit": commit, "rc": int(rc),
                      "seconds": int(seconds), "git_status_after": status, "clone": where,
                      "shared_beside_clone": False, "log_tail": tail,
                      "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")
EOF
  [ -e "$dir/shared" ] && echo "warning: $dir/shared exists"
  echo "$w: rc=$rc, ${seconds}s; log $log"
done
