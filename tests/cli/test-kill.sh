#!/bin/sh
# Crash safety of training: SIGKILL `dit train` at arbitrary moments (a
# bounded number of times); after every kill the newest checkpoint must load
# and training must resume from it, so no checkpoint is ever half-written.
# usage: test-kill.sh DIT CLI_CHECK
set -u
dit=$1 check=$2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/data/a" "$T/data/b"
for i in 1 2 3; do
    "$check" mask 8 8 1 1 $((i + 2)) 4 "$T/data/a/$i.png"
    "$check" mask 8 8 2 2 6 $((i + 3)) "$T/data/b/$i.png"
done
ARGS="--data $T/data --channels 1 --size 8 --patch 2 --hidden 32 --depth 1 --heads 2 --batch 4 --every 1 --validate-every 0 --warmup 0 --quiet --threads 1"
"$dit" train $ARGS --steps 2 --out "$T/run" >/dev/null 2>&1 || { echo "NOT OK: first run failed"; exit 1; }
fails=0 last=2
for k in 1 2 3 4 5 6 7 8; do
    "$dit" train $ARGS --resume --steps 100000 --out "$T/run" >"$T/log" 2>&1 &
    pid=$!
    # kill somewhere between 0.2 and 0.9 s in: mid-step or mid-write
    sleep "0.$((k % 8 + 2))"
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    # the checkpoint on disk must load: resume for one step
    "$dit" train $ARGS --resume --steps 0 --out "$T/run" >"$T/r" 2>&1
    if grep -q "resuming at step" "$T/r"; then
        step=$(sed -n 's/.*resuming at step \([0-9]*\).*/\1/p' "$T/r" | head -1)
        echo "ok: kill $k, checkpoint at step $step loads"
        [ "$step" -ge "$last" ] || { echo "NOT OK: the step went back ($step < $last)"; fails=$((fails + 1)); }
        last=$step
    else
        echo "NOT OK: kill $k left a checkpoint that does not load"; sed 's/^/    /' "$T/r"; fails=$((fails + 1))
    fi
    ls "$T/run" | grep -q '\.tmp-' && rm -f "$T/run"/*.tmp-*   # orphaned temp files are allowed, partial checkpoints are not
done
[ "$last" -gt 2 ] || { echo "NOT OK: training never advanced between kills"; fails=$((fails + 1)); }
echo "$fails failure(s)"
[ "$fails" -eq 0 ]
