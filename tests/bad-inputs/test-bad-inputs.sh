#!/bin/sh
# The bad-input table (cases.txt): every case must exit with its code and say
# its message, and no case may leave a partial output file behind.
# usage: test-bad-inputs.sh DIT CLI_CHECK GOLDEN_DIR CASES
set -u
dit=$1 check=$2 G=$3 cases=$4
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/pipe" && ln -s "$G/dit_diffusers_p2" "$T/pipe/transformer" && ln -s "$G/vae_kl" "$T/pipe/vae"
P="-m $T/pipe --steps 2 --progress none"
# the inputs the cases refer to
head -c 3000 "$G/dit_official_p8.safetensors" >"$T/trunc.safetensors"
"$check" poke "$G/dit_official_p8.safetensors" "$T/nan.safetensors" final_layer.linear.weight nan
"$check" poke "$G/dit_official_p8.safetensors" "$T/inf.safetensors" blocks.0.mlp.fc1.bias inf
"$check" rawst '{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}}' 8 "$T/huge.safetensors"
"$check" rawst '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}' 8 "$T/hdrlong.safetensors"
printf '\350\003\0\0\0\0\0\0{}' >"$T/hdrlong.safetensors"
"$check" rawst '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}' 16 "$T/dup.safetensors"
"$check" rawst '{"weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}' 8 "$T/notdit.safetensors"
mkdir -p "$T/fewer" && cp "$G/dit_diffusers_p2/diffusion_pytorch_model.safetensors" "$T/fewer/"
printf '{"num_layers": 2, "num_attention_heads": 4}' >"$T/fewer/config.json"
for v in 'heads7 {"num_attention_heads": 7}' 'heads0 {"num_attention_heads": 0}' \
         'hdim7 {"attention_head_dim": 7}' 'patch0 {"patch_size": 0}' 'patch4 {"patch_size": 4}'; do
    d=${v%% *}
    mkdir -p "$T/$d" && ln -s "$G/dit_diffusers_p2/diffusion_pytorch_model.safetensors" "$T/$d/"
    printf '%s' "${v#* }" >"$T/$d/config.json"
done
: >"$T/empty.png"
echo "not a png at all" >"$T/text.png"
"$dit" generate $P -W 48 -H 32 -o "$T/img.png"
head -c 100 "$T/img.png" >"$T/trunc.png"
"$check" pngdims 100000 100000 "$T/huge.png"
"$check" pngdims 100000 1 "$T/wide.png"
"$check" pngdims 0 5 "$T/zerow.png"
"$check" rawst '{"latent":{"dtype":"F32","shape":[1,4,0,0],"data_offsets":[0,0]}}' 0 "$T/lat0.safetensors"
"$check" rawst '{"latent":{"dtype":"F32","shape":[0,4,8,8],"data_offsets":[0,0]}}' 0 "$T/batch0.safetensors"
"$check" resize "$T/img.png" 3 3 "$T/tiny3.png"
"$check" resize "$T/img.png" 1 1 "$T/px1.png"
"$check" resize "$T/img.png" 1 30000 "$T/tall.png"
"$check" mask 20 20 1 1 5 5 "$T/m20.png"
"$check" mask 48 32 10 10 10 10 "$T/m1px.png"
"$check" mask 48 32 100 100 100 100 "$T/m0.png"
printf 'apple\nbanana\ncherry\ndog\negg\nfig\ngrape\nhat\nice\njam\n' >"$T/labels.txt"
"$dit" encode --vae "$G/vae_kl" "$T/img.png" -o "$T/lat.safetensors"
"$check" poke "$T/lat.safetensors" "$T/nanlat.safetensors" latent nan
mkdir -p "$T/noclasses" "$T/classes/a" "$T/classes/b"
cp "$T/img.png" "$T/classes/a/1.png" && cp "$T/img.png" "$T/classes/b/1.png"
# T5 encoder folders with one thing wrong each (the tokenizer in the first only)
for v in out miss vocab; do
    mkdir -p "$T/t5$v" && cp "$G/t5_tiny/config.json" "$G/t5_tiny/spiece.model" "$T/t5$v/"
done
printf '{"weight_map": {"shared.weight": "../model.safetensors"}}' >"$T/t5out/model.safetensors.index.json"
printf '{"weight_map": {"shared.weight": "model-00001-of-00002.safetensors"}}' >"$T/t5miss/model.safetensors.index.json"
ln -s "$G/t5_tiny/model.safetensors" "$T/t5vocab/" && printf '{"extra_ids": 500}' >"$T/t5vocab/tokenizer_config.json"

n=0 fails=0
while IFS='|' read -r code msg what cmd; do
    case "$code" in '#'*|'') continue ;; esac
    n=$((n + 1))
    rm -f "$T/o.png" "$T/big.png"
    eval "$cmd" >"$T/out" 2>&1
    rc=$?
    ok=1
    [ "$rc" -eq "$code" ] || ok=0
    [ -z "$msg" ] || grep -qF -- "$msg" "$T/out" || ok=0
    # a failed run leaves no output and no temporary file
    if [ "$code" -ne 0 ] && { [ -e "$T/o.png" ] || [ -e "$T/big.png" ] || ls "$T"/*.tmp-* >/dev/null 2>&1; }; then ok=0; fi
    if [ $ok = 1 ]; then echo "ok $n: $what -> exit $rc"
    else echo "NOT OK $n: $what: exit $rc (wanted $code, '$msg')"; sed 's/^/    /' "$T/out"; fails=$((fails + 1)); fi
done <"$cases"
# the successful edge cases did what they should
"$check" outside "$T/img.png" "$T/one.png" "$T/m1px.png" | grep -q '^outside 0 ' || { echo "NOT OK: 1-pixel inpaint changed pixels outside"; fails=$((fails + 1)); }
"$check" same "$T/img.png" "$T/zero.png" >/dev/null || { echo "NOT OK: empty-mask inpaint changed the image"; fails=$((fails + 1)); }
echo "$n cases, $fails failure(s)"
[ "$n" -ge 30 ] && [ "$fails" -eq 0 ]
