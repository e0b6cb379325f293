#!/bin/sh
# The CUDA kernels give the same bits whatever order their blocks run in and
# however many host threads run: test-parity-emu twice (blocks in order on 2
# threads; blocks in reverse, DIT_EMU_BLOCK_ORDER=reverse, on 1 thread) and
# every row's hash of the device outputs compared. The reductions (GroupNorm
# slices, sum_squares parts, bias-gradient bands) are fixed-order by design;
# this is what shows it.
# usage: test-determinism.sh TEST-PARITY-EMU
set -u
exe=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
OMP_NUM_THREADS=2 "$exe" >"$tmp/a" 2>&1
rc_a=$?
OMP_NUM_THREADS=1 DIT_EMU_BLOCK_ORDER=reverse "$exe" >"$tmp/b" 2>&1
rc_b=$?
if [ "$rc_a" -ne 0 ] || [ "$rc_b" -ne 0 ]; then
    echo "NOT OK: the parity runs failed (exit $rc_a, $rc_b)"; tail -20 "$tmp/a" "$tmp/b"; exit 1
fi
for f in a b; do
    sed -n 's/^  \(.*[^ ]\)  *\(fp32\|tf32\|bf16\) err .*  hash \([0-9a-f]*\)$/\1 \2|\3/p' "$tmp/$f" >"$tmp/$f.h"
done
rows=$(wc -l <"$tmp/a.h")
if [ "$rows" -lt 50 ] || ! cmp -s "$tmp/a.h" "$tmp/b.h"; then
    echo "NOT OK: $rows rows; the device outputs differ between the runs:"
    diff "$tmp/a.h" "$tmp/b.h" | head -40
    exit 1
fi
echo "ok: $rows rows, the device outputs bit for bit the same with the blocks in order (2 threads) and in reverse (1 thread)"
