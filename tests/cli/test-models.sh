#!/bin/sh
# The model library: dit models list/show, and a name wherever --model is
# taken. A private $XDG_DATA_HOME holds the user's folder.
# usage: test-models.sh DIT SOURCE_ROOT
set -u
dit=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export XDG_DATA_HOME="$tmp/data"
lib="$XDG_DATA_HOME/gimp-dit/models"
fails=0
expect() { # CODE WHAT -- COMMAND...
    code=$1 what=$2
    shift 3
    "$@" >"$tmp/out" 2>&1
    rc=$?
    if [ $rc -ne "$code" ]; then
        echo "NOT OK: $what: exit $rc, wanted $code"; sed 's/^/    /' "$tmp/out"; fails=$((fails + 1))
    else
        echo "ok: $what (exit $rc)"
    fi
}
has() {
    if grep -qE -- "$1" "$tmp/out"; then echo "ok:   $2"; else
        echo "NOT OK: $2: no /$1/ in:"; sed 's/^/    /' "$tmp/out"; fails=$((fails + 1)); fi
}

mkdir -p "$lib/mine" "$lib/pipe" "$lib/broken"
cp "$src"/data/models/default/model.safetensors "$src"/data/models/default/labels.txt "$lib/mine/"
ln -s "$src/tests/golden/dit_diffusers_p2" "$lib/pipe/transformer"
ln -s "$src/tests/golden/vae_kl" "$lib/pipe/vae"
echo "not a model" >"$lib/broken/model.safetensors"

expect 0 "models list" -- "$dit" models list
has '^broken +\(does not load\)' "a folder that does not load is listed as such"
has "^mine +DiT adaln-zero, patch 4 +32x32 +10 +no .*$lib/mine\$" "the user's model: 32x32, 10 classes, no VAE"
has "^pipe +DiT .* yes .*$lib/pipe\$" "a pipeline folder: with its VAE"
has "^default +DiT adaln-zero, patch 4 +32x32 +10 +no .*/models/default\$" "the installed default"
expect 0 "models show mine" -- "$dit" models show mine
has "^classes: +10\$" "show: the classes"
has "^path: +$lib/mine\$" "show: where"
expect 2 "models show an unknown name" -- "$dit" models show nosuch
has "no model 'nosuch' in the library" "show: the unknown name"
expect 1 "models with a bad verb" -- "$dit" models frob

expect 0 "generate -m NAME" -- "$dit" generate -m mine --class Dress --steps 2 -o "$tmp/mine.png"
[ -s "$tmp/mine.png" ] || { echo "NOT OK: generate -m mine wrote nothing"; fails=$((fails + 1)); }
expect 2 "generate -m an unknown name" -- "$dit" generate -m nosuch --steps 2 -o "$tmp/no.png"
has "nor a model of that name in the library" "the unknown name is named"
[ ! -e "$tmp/no.png" ] || { echo "NOT OK: an unknown model wrote a file"; fails=$((fails + 1)); }

# the user's folder comes first: a "default" of theirs hides the installed
# one by name (the embedded default, used without --model, stays)
mkdir -p "$lib/default"
cp "$lib/mine/"* "$lib/default/"
expect 0 "models list with a user's default" -- "$dit" models list
has "^default .*/models/default  \(hidden by the one above\)\$" "the installed default is hidden by the user's"
[ $fails = 0 ] && echo "all passed"
exit $((fails > 0))
