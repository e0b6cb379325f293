#!/bin/sh
# Runs the README's CLI examples (between the cli-examples markers) as they
# are written, with build/core/cli/dit pointing at this build's binary.
# usage: test-readme.sh DIT SOURCE_ROOT
set -u
dit=$1 root=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed -n '/<!-- cli-examples -->/,/<!-- \/cli-examples -->/p' "$root/README.md" |
    grep -v '^<!--\|^```\|^#\|^$' >"$tmp/examples"
n=$(wc -l <"$tmp/examples")
[ "$n" -ge 5 ] || { echo "only $n examples found in README.md"; exit 1; }
fails=0
cd "$root" || exit 1
while IFS= read -r line; do
    cmd=$(printf '%s' "$line" | sed "s|build/core/cli/dit|$dit|g; s|/tmp/dit-|$tmp/dit-|g")
    if sh -c "$cmd" >"$tmp/out" 2>&1; then echo "ok: $line"
    else echo "NOT OK: $line"; sed 's/^/    /' "$tmp/out"; fails=$((fails + 1)); fi
done <"$tmp/examples"
echo "$n examples, $fails failure(s)"
[ "$fails" -eq 0 ]
