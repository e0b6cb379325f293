#!/bin/sh
# A CUDA-enabled build on a machine without CUDA: only the backend module
# (libdit-cuda.so) has CUDA's libraries among its dependencies, and with
# those libraries hidden (/dev/null bound over each, in a mount namespace of
# this test alone) the CLI starts, runs on the CPU under --device auto, and
# --device cuda says why it cannot. Skipped (77) where a mount namespace
# cannot be made (not root, or no unshare).
# usage: test-no-cuda.sh DIT MODULE MODEL BINARY...   (BINARY: libdit, plug-ins)
set -u
dit=$1 module=$2 model=$3
shift 3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "NOT OK: $*"; fails=$((fails + 1)); }

for b in "$dit" "$@"; do
    [ -e "$b" ] || continue
    if readelf -d "$b" | grep NEEDED | grep -qiE 'libcuda|libcublas|libnvrtc'; then
        fail "$b needs a CUDA library:"; readelf -d "$b" | grep NEEDED
    else
        echo "ok: $(basename "$b") needs no CUDA library"
    fi
done
readelf -d "$module" | grep NEEDED | grep -qi libcudart || fail "the module does not link CUDA's runtime"

libs=$(echo $(ldd "$module" | awk '/libcudart|libcublas|libcuda\./ && $3 ~ /^\// {print $3}'))
[ -n "$libs" ] || { echo "the module's CUDA libraries do not resolve here: skipped"; exit 77; }
if [ "$(id -u)" != 0 ] || ! unshare -m true 2>/dev/null; then
    echo "no mount namespace here (root and unshare -m needed): skipped"
    exit 77
fi
cat >"$tmp/hidden.sh" <<SCRIPT
set -u
for l in $libs; do mount --bind /dev/null "\$l" || exit 70; done
"$dit" info --device --json >"$tmp/info.json" 2>&1; echo \$? >"$tmp/info.rc"
"$dit" generate -m "$model" --steps 2 --seed 1 -o "$tmp/auto.png" >"$tmp/auto.log" 2>&1
echo \$? >"$tmp/auto.rc"
"$dit" generate -m "$model" --steps 2 --device cuda -o "$tmp/cuda.png" >"$tmp/cuda.log" 2>&1
echo \$? >"$tmp/cuda.rc"
SCRIPT
unshare -m sh "$tmp/hidden.sh"
rc=$?
[ $rc = 70 ] && { echo "cannot bind over the CUDA libraries here: skipped"; exit 77; }
echo "with $(echo $libs | wc -w) CUDA libraries hidden:"
sed 's/^/    /' "$tmp/info.json"
[ "$(cat "$tmp/info.rc")" = 0 ] || fail "dit info --device failed"
grep -q '"cuda_backend": true, "cuda_device": false' "$tmp/info.json" ||
    fail "info --device: the build has CUDA, no device usable"
grep -q 'could not be loaded' "$tmp/info.json" || fail "info --device does not say why"
[ "$(cat "$tmp/auto.rc")" = 0 ] && [ -s "$tmp/auto.png" ] ||
    { fail "--device auto did not run on the CPU"; cat "$tmp/auto.log"; }
[ "$(cat "$tmp/cuda.rc")" != 0 ] && [ ! -e "$tmp/cuda.png" ] ||
    fail "--device cuda without CUDA: exit $(cat "$tmp/cuda.rc"), or it wrote a file"
grep -q 'could not be loaded: .*lib' "$tmp/cuda.log" ||
    { fail "--device cuda does not name the missing library"; cat "$tmp/cuda.log"; }
sed 's/^/    /' "$tmp/cuda.log"
[ $fails = 0 ] && echo "all passed"
exit $((fails > 0))
