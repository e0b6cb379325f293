#!/bin/sh
# The README's "Photo models" path on seeded weights in the real layouts:
# the official DiT-XL/2 .pt checkpoints for 256 and 512 (make-dit-pt.py:
# width 1152, 16 heads, 1000 classes, learned sigma, pos_embed of 256 and
# 1024 tokens; depth cut to 1 block for time) with an SD-VAE-shaped diffusers
# folder, and a facebook/DiT-XL-2-256-style pipeline folder
# (make-photo-models). `dit models add` installs each into a private
# library, `list` shows their sizes and 1000 classes with ImageNet's labels,
# and `dit inpaint -m NAME` runs a step on each.
# usage: test-photo-models.sh DIT MAKE-PHOTO-MODELS CLI-CHECK SOURCE_ROOT
set -u
dit=$1 make=$2 check=$3 src=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export XDG_DATA_HOME="$tmp/data"
lib="$XDG_DATA_HOME/gimp-dit/models"
fails=0
. "$src/tests/cli/expect.sh"

dl="$tmp/downloads"
mkdir -p "$dl"
expect 0 "seeded SD VAE and DiT-XL-2-256 repo" -- "$make" "$dl" 1
expect 0 "seeded DiT-XL-2-256x256.pt" -- python3 "$src/tests/bench/make-dit-pt.py" "$dl/DiT-XL-2-256x256.pt" 256 1
expect 0 "seeded DiT-XL-2-512x512.pt" -- python3 "$src/tests/bench/make-dit-pt.py" "$dl/DiT-XL-2-512x512.pt" 512 1

expect 0 "models add the 256 .pt with the VAE" -- "$dit" models add "$dl/DiT-XL-2-256x256.pt" --vae "$dl/sd-vae-ft-ema" --name dit-xl-256
has "^added 'dit-xl-256': DiT adaln-zero, 256x256 pixels, 1000 classes, with its VAE" "256 px, 1000 classes"
expect 0 "models add the 512 .pt with the VAE" -- "$dit" models add "$dl/DiT-XL-2-512x512.pt" --vae "$dl/sd-vae-ft-ema" --name dit-xl-512
has "^added 'dit-xl-512': DiT adaln-zero, 512x512 pixels, 1000 classes" "512 px"
expect 0 "models add the diffusers repo folder" -- "$dit" models add "$dl/DiT-XL-2-256"
has "^added 'DiT-XL-2-256': DiT adaln-zero, 256x256 pixels, 1000 classes, with its VAE" "the repo, as is"
expect 0 "models list" -- "$dit" models list
has "^dit-xl-256 +DiT adaln-zero, patch 2 +256x256 +1000 +yes " "listed: dit-xl-256"
has "^dit-xl-512 +DiT adaln-zero, patch 2 +512x512 +1000 +yes " "listed: dit-xl-512"
has "^DiT-XL-2-256 +DiT adaln-zero, patch 2 +256x256 +1000 +yes " "listed: DiT-XL-2-256"
for m in dit-xl-256 dit-xl-512 DiT-XL-2-256; do
    [ "$(wc -l <"$lib/$m/labels.txt")" -ge 999 ] && grep -q "golden retriever" "$lib/$m/labels.txt" ||
        { echo "NOT OK: $m has no ImageNet labels"; fails=$((fails + 1)); }
done
[ -f "$lib/DiT-XL-2-256/scheduler/scheduler_config.json" ] ||
    { echo "NOT OK: the repo's scheduler was not taken"; fails=$((fails + 1)); }

# one step of an inpaint on each, by name, with an ImageNet class name (an unknown one fails the run)
"$check" mask 256 256 64 64 192 192 "$tmp/mask.png" >/dev/null
for m in dit-xl-256 dit-xl-512 DiT-XL-2-256; do
    expect 0 "inpaint -m $m, one step" -- "$dit" inpaint -m "$m" -i "$src/data/examples/garment.png" --mask "$tmp/mask.png" --class "golden retriever" --steps 1 -o "$tmp/$m.png"
    has "^class: golden retriever$" "$m: the ImageNet class name resolves"
    [ -s "$tmp/$m.png" ] || { echo "NOT OK: inpaint -m $m wrote nothing"; fails=$((fails + 1)); }
done
[ $fails = 0 ] && echo "all passed"
exit $((fails > 0))
