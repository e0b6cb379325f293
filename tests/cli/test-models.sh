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
. "$src/tests/cli/expect.sh"

mkdir -p "$lib/mine" "$lib/pipe" "$lib/broken"
cp "$src"/data/models/default/model.safetensors "$src"/data/models/default/labels.txt "$lib/mine/"
ln -s "$src/tests/golden/dit_diffusers_p2" "$lib/pipe/transformer"
ln -s "$src/tests/golden/vae_kl" "$lib/pipe/vae"
echo "not a model" >"$lib/broken/model.safetensors"
mkdir -p "$lib/zz" "$lib/aa" "$lib/.aa.adding-XXXXXX" # an add in progress is not listed

expect 0 "models list" -- "$dit" models list
has '^broken +\(does not load\)' "a folder that does not load is listed as such"
has "^mine +DiT adaln-zero, patch 4 +32x32 +10 +no .*$lib/mine\$" "the user's model: 32x32, 10 classes, no VAE"
has "^pipe +DiT .* yes .*$lib/pipe\$" "a pipeline folder: with its VAE"
has "^default +DiT adaln-zero, patch 4 +32x32 +10 +no .*/models/default\$" "the installed default"
order=$(awk '$1 ~ /^(broken|mine|pipe|zz|aa)$/ {printf "%s ", $1}' "$tmp/out")
[ "$order" = "aa broken mine pipe zz " ] ||
    { echo "NOT OK: the user's models are not sorted by name: $order"; fails=$((fails + 1)); }
! grep -q '^\.aa' "$tmp/out" || { echo "NOT OK: an add in progress is listed"; fails=$((fails + 1)); }
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

# add: what people download, into the user's library; a refused add leaves
# the library as it was
g=$src/tests/golden
echo "not a model" >"$tmp/junk.safetensors"
before=$(ls -A "$lib")
expect 3 "add a file that is not a model" -- "$dit" models add "$tmp/junk.safetensors"
has "junk.safetensors does not load as a DiT" "the reason"
expect 3 "add a VAE that does not fit" -- "$dit" models add "$src/data/models/default" --vae "$g/vae_kl" --name misfit
has "the VAE's latents have 4 channels, the DiT takes 1" "the misfit is named"
expect 3 "add a latent DiT without a VAE" -- "$dit" models add "$g/dit_diffusers_p2" --name novae
has "give its VAE with --vae" "the missing VAE is asked for"
expect 2 "add under a taken name" -- "$dit" models add "$g/dit_diffusers_p2" --vae "$g/vae_kl" --name mine
has "a model named 'mine' exists" "the taken name"
expect 2 "add a missing file" -- "$dit" models add "$tmp/nothing.pt"
[ "$(ls -A "$lib")" = "$before" ] || { echo "NOT OK: a refused add changed the library: $(ls -A "$lib")"; fails=$((fails + 1)); }

expect 0 "add a diffusers folder and a VAE" -- "$dit" models add "$g/dit_diffusers_p2" --vae "$g/vae_kl" --name p2
has "^added 'p2': DiT adaln-zero, 16x16 pixels, 10 classes, with its VAE" "what was added"
want=$(sha256sum "$g/dit_diffusers_p2/diffusion_pytorch_model.safetensors" | cut -d' ' -f1)
grep -q "\"path\": \"transformer/diffusion_pytorch_model.safetensors\", \"bytes\": [0-9]*, \"sha256\": \"$want\"" "$lib/p2/manifest.json" ||
    { echo "NOT OK: the manifest lacks the weights' sha256"; fails=$((fails + 1)); }
expect 0 "generate -m the added model" -- "$dit" generate -m p2 --class 3 --steps 2 -o "$tmp/p2.png"
[ -s "$tmp/p2.png" ] || { echo "NOT OK: generate -m p2 wrote nothing"; fails=$((fails + 1)); }
expect 0 "add an official .pt (converted) and a VAE" -- "$dit" models add "$g/dit_convert.pt" --vae "$g/vae_kl" --heads 2 --name pt
has "^added 'pt': DiT adaln-zero, 8x8 pixels, 3 classes" "the .pt's model"
expect 0 "list after adding" -- "$dit" models list
has "^pt +DiT adaln-zero, patch 2 +8x8 +3 +yes " "the .pt in the list"
# a folder as huggingface-cli leaves it: every file a relative link into a
# cache beside it; the library gets the files, not links that would dangle
mkdir -p "$tmp/hf/blobs" "$tmp/hf/snap/transformer" "$tmp/hf/snap/vae"
for part in transformer:dit_diffusers_p2 vae:vae_kl; do
    sub=${part%%:*} from=${part#*:}
    for f in config.json diffusion_pytorch_model.safetensors; do
        cp "$g/$from/$f" "$tmp/hf/blobs/$sub-$f"
        ln -s "../../blobs/$sub-$f" "$tmp/hf/snap/$sub/$f"
    done
done
expect 0 "add a folder of relative links (huggingface-cli's)" -- "$dit" models add "$tmp/hf/snap" --name hf
if [ -f "$lib/hf/transformer/diffusion_pytorch_model.safetensors" ] && [ ! -L "$lib/hf/transformer/diffusion_pytorch_model.safetensors" ] &&
    cmp -s "$lib/hf/vae/config.json" "$g/vae_kl/config.json"; then echo "ok:   the library holds the files themselves"
else echo "NOT OK: the library's copy of a linked folder"; ls -l "$lib/hf/transformer" "$lib/hf/vae"; fails=$((fails + 1)); fi
expect 0 "remove it" -- "$dit" models remove hf
# a text model's pipeline folder: its encoder, tokenizer and index come along
export XDG_CACHE_HOME="$tmp/cache"
expect 0 "add a PixArt pipeline folder" -- "$dit" models add "$g/pixart_pipe" --name tulips
has_text "added 'tulips': PixArt (text), 16x16 pixels, prompts, with its VAE" "what was added"
for part in transformer text_encoder tokenizer vae scheduler model_index.json; do
    [ -e "$lib/tulips/$part" ] || { echo "NOT OK: the text model lacks $part"; fails=$((fails + 1)); }
done
expect 0 "list shows it as a text model" -- "$dit" models list
has "^tulips  *PixArt text, patch 2  *16x16  *prompt" "the text model in the list"
expect 0 "generate -m tulips --prompt" -- "$dit" generate -m tulips --prompt "a cat" --steps 2 -o "$tmp/tulips.png"
[ -s "$tmp/tulips.png" ] || { echo "NOT OK: generate -m tulips wrote nothing"; fails=$((fails + 1)); }
expect 0 "remove it" -- "$dit" models remove tulips
expect 0 "remove an added model" -- "$dit" models remove p2
[ ! -e "$lib/p2" ] && [ -s "$g/dit_diffusers_p2/diffusion_pytorch_model.safetensors" ] ||
    { echo "NOT OK: remove left the model, or took the file it came from"; fails=$((fails + 1)); }
expect 2 "remove an installed model" -- "$dit" models remove default
has "'default' is not in your library" "only the user's models are removed"

# the user's folder comes first: a "default" of theirs hides the installed
# one by name (the embedded default, used without --model, stays)
mkdir -p "$lib/default"
cp "$lib/mine/"* "$lib/default/"
expect 0 "models list with a user's default" -- "$dit" models list
has "^default .*/models/default  \(hidden by the one above\)\$" "the installed default is hidden by the user's"
[ $fails = 0 ] && echo "all passed"
exit $((fails > 0))
