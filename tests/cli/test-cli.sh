#!/bin/sh
# Every dit subcommand through the real binary, on the golden fixtures and
# on a real photo; numeric checks go through cli-check.
# usage: test-cli.sh DIT CLI_CHECK GOLDEN_DIR PHOTOS_DIR
set -u
dit=$1 check=$2 golden=$3 photos=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
say() { echo "$@"; }
bad() { say "NOT OK: $*"; fails=$((fails + 1)); }

# run CODE DESCRIPTION -- CMD...: exit code must be CODE; output in $tmp/out
run() {
    code=$1 what=$2; shift 3
    "$@" >"$tmp/out" 2>&1
    rc=$?
    if [ "$rc" -ne "$code" ]; then bad "$what: exit $rc, wanted $code"; sed 's/^/    /' "$tmp/out"
    else say "ok: $what (exit $rc)"; fi
}
has() { if grep -qF -- "$1" "$tmp/out"; then say "ok:   says '$1'"; else bad "$2: no '$1'"; sed 's/^/    /' "$tmp/out"; fi; }

# a pipeline folder: the tiny random DiT + VAE (16x16 native images)
mkdir -p "$tmp/pipe"
ln -s "$golden/dit_diffusers_p2" "$tmp/pipe/transformer"
ln -s "$golden/vae_kl" "$tmp/pipe/vae"
printf 'apple\nbanana\ncherry\ndog, puppy\negg\nfig\ngrape\nhat\nice\njam\n' >"$tmp/labels.txt"
P="-m $tmp/pipe --steps 4 --progress none"

# ---- generate
run 0 "generate" -- "$dit" generate $P --class 3 --seed 5 -o "$tmp/g1.png"
run 0 "generate again, same seed" -- "$dit" generate $P --class 3 --seed 5 -o "$tmp/g2.png"
if cmp -s "$tmp/g1.png" "$tmp/g2.png"; then say "ok:   same seed, same bytes"; else bad "same seed gave different files"; fi
run 0 "generate, another seed" -- "$dit" generate $P --class 3 --seed 6 -o "$tmp/g3.png"
run 1 "differs from the first" -- "$check" same "$tmp/g1.png" "$tmp/g3.png"
run 0 "generate by label name (synonym)" -- "$dit" generate $P --labels "$tmp/labels.txt" --class Puppy --seed 5 -o "$tmp/g4.png"
run 0 "  the same image as --class 3" -- "$check" same "$tmp/g4.png" "$tmp/g1.png"
run 0 "generate a batch of 3" -- "$dit" generate $P --batch 3 -o "$tmp/b.png"
for i in 0 1 2; do [ -f "$tmp/b-$i.png" ] || bad "batch file b-$i.png missing"; done
run 0 "generate a batch as a grid" -- "$dit" generate $P --batch 4 --grid -o "$tmp/grid.png"
run 0 "generate 16-bit, 32x24, every sampler" -- sh -c "for s in ddpm ddim dpm++2m euler; do \"$dit\" generate $P --sampler \$s --bit-depth 16 -W 32 -H 24 -o \"$tmp/s-\$s.png\" || exit 1; done"
run 0 "generate --guidance-interval 0,1" -- "$dit" generate $P --class 3 --seed 5 --guidance-interval 0,1 -o "$tmp/gi1.png"
run 0 "  is the default's guidance" -- "$check" same "$tmp/gi1.png" "$tmp/g1.png"
run 0 "generate --guidance-interval 0.9,0.1 (empty)" -- "$dit" generate $P --class 3 --seed 5 --guidance-interval 0.9,0.1 -o "$tmp/gi0.png"
run 0 "generate -g 1 (no guidance)" -- "$dit" generate $P --class 3 --seed 5 -g 1 -o "$tmp/g-off.png"
run 0 "  an empty interval is no guidance" -- "$check" same "$tmp/gi0.png" "$tmp/g-off.png"
# ---- the block cache: calibrate beside the model, then --cache finds it
cp -rL "$tmp/pipe" "$tmp/cpipe"
run 0 "calibrate-cache" -- "$dit" calibrate-cache -m "$tmp/cpipe" --steps 6 --sampler ddim -n 2 --progress none
has "wrote $tmp/cpipe/dit-cache.json" "calibrate-cache"
[ -f "$tmp/cpipe/dit-cache.json" ] || bad "calibrate-cache wrote no profile into the model folder"
run 0 "generate --cache 1" -- "$dit" generate -m "$tmp/cpipe" --steps 6 --sampler ddim --progress none --class 3 --seed 5 --cache 1 -o "$tmp/c1.png"
run 0 "generate (no cache)" -- "$dit" generate -m "$tmp/cpipe" --steps 6 --sampler ddim --progress none --class 3 --seed 5 -o "$tmp/c0.png"
run 0 "  --cache 1 is no cache" -- "$check" same "$tmp/c1.png" "$tmp/c0.png"
run 0 "generate --cache 0.5 (the model's calibration)" -- "$dit" generate -m "$tmp/cpipe" --steps 6 --sampler ddim --progress none --class 3 --seed 5 --cache 0.5 -o "$tmp/c5.png"
[ -f "$tmp/c5.png" ] || bad "--cache 0.5 wrote nothing"
if grep -q "no calibration" "$tmp/out"; then bad "--cache did not find the model's calibration"; fi
run 0 "generate --cache 0.5 on a model without calibration" -- "$dit" generate $P --class 3 --seed 5 --cache 0.5 -o "$tmp/c6.png"
has "no calibration" "--cache without a profile"
run 0 "generate --progress json" -- "$dit" generate -m "$tmp/pipe" --steps 3 --progress json -o "$tmp/j.png"
has '{"step": 3, "total": 3' "json progress"

# ---- img2img / inpaint on a real photo when ../shared is there, else a generated one
if [ -f "$photos/chelsea.png" ]; then src="$photos/chelsea.png"; W=451 H=300
else "$dit" generate $P -W 48 -H 32 -o "$tmp/src.png"; src="$tmp/src.png"; W=48 H=32; fi
run 0 "img2img (resize policy)" -- "$dit" img2img $P -i "$src" --strength 0.6 -o "$tmp/i2i.png"
run 0 "img2img strength 0 returns the input" -- "$dit" img2img $P -i "$src" --strength 0 -o "$tmp/i2i0.png"
run 0 "  pixel for pixel" -- "$check" same "$src" "$tmp/i2i0.png"
"$check" mask $W $H 40 30 120 90 "$tmp/mask.png"
"$check" mask $W $H 40 30 120 90 6 "$tmp/soft.png"
"$check" resize "$src" 48 32 "$tmp/src48.png"
"$check" mask 48 32 10 6 30 20 "$tmp/mask48.png"
for pol in resize crop pad none; do
    s="$src" m="$tmp/mask.png"
    case $pol in pad|none) s="$tmp/src48.png" m="$tmp/mask48.png" ;; esac
    run 0 "inpaint --resize $pol" -- "$dit" inpaint $P -i "$s" --mask "$m" --resize $pol -o "$tmp/in-$pol.png"
    "$check" outside "$s" "$tmp/in-$pol.png" "$m" >"$tmp/cmp"
    read -r _ out _ in <"$tmp/cmp"
    if [ "$out" = 0 ] && [ "$in" -gt 0 ]; then say "ok:   outside the mask untouched, $in pixels inside changed"
    else bad "inpaint $pol: $(cat "$tmp/cmp")"; fi
done
run 0 "inpaint with a feathered mask and --grow" -- "$dit" inpaint $P -i "$src" --mask "$tmp/soft.png" --grow 1 -o "$tmp/in-soft.png"
"$check" outside "$src" "$tmp/in-soft.png" "$tmp/soft.png" >"$tmp/cmp"
read -r _ out _ in <"$tmp/cmp"
[ "$out" = 0 ] && say "ok:   feathered: outside untouched" || bad "feathered inpaint changed $out pixels outside"
for opts in "--mask-mode differential" "--feather 3 --colour-match" \
            "--mask-mode differential --resample-jump 1 --resample-count 2"; do
    run 0 "inpaint $opts" -- "$dit" inpaint $P -i "$src" --mask "$tmp/soft.png" $opts -o "$tmp/in-opt.png"
    "$check" outside "$src" "$tmp/in-opt.png" "$tmp/soft.png" >"$tmp/cmp"
    read -r _ out _ in <"$tmp/cmp"
    [ "$out" = 0 ] && [ "$in" -gt 0 ] && say "ok:   $opts: outside untouched, inside changed" ||
        bad "inpaint $opts: $(cat "$tmp/cmp")"
done

# ---- outpaint: the canvas grows, the source sits bit for bit at its offset
run 0 "outpaint --extend 8 --right 24" -- "$dit" outpaint $P -i "$tmp/src48.png" --extend 8 --right 24 -o "$tmp/out.png"
run 0 "  the canvas is 80 x 48" -- "$check" dims "$tmp/out.png" 80 48
"$check" placed "$tmp/src48.png" "$tmp/out.png" 8 8 >"$tmp/cmp"
read -r _ placed _ outside <"$tmp/cmp"
[ "$placed" = 0 ] && [ "$outside" -gt 100 ] && say "ok:   source kept at (8, 8), $outside border pixels filled" ||
    bad "outpaint: $(cat "$tmp/cmp")"
run 2 "outpaint with nothing to fill" -- "$dit" outpaint $P -i "$tmp/src48.png" -o "$tmp/x.png"
has "nothing to outpaint" "outpaint with no border"
# ---- a text model (PixArt): the tiny transformer, T5 and tokenizer, the VAE
mkdir -p "$tmp/text"
ln -s "$golden/pixart_tiny/transformer" "$tmp/text/transformer"
ln -s "$golden/t5_tiny" "$tmp/text/text_encoder"
ln -s "$golden/t5_tiny" "$tmp/text/tokenizer"
ln -s "$golden/vae_kl" "$tmp/text/vae"
export XDG_CACHE_HOME="$tmp/cache"
T="-m $tmp/text --steps 3 --progress none --seed 5"
run 0 "generate from a prompt" -- "$dit" generate $T --prompt "a red tulip" -W 16 -H 24 -o "$tmp/t1.png"
has "prompt: a red tulip" "generate --prompt"
run 0 "  16 x 24" -- "$check" dims "$tmp/t1.png" 16 24
n=$(ls "$tmp/cache/gimp-dit/prompts" 2>/dev/null | wc -l)
[ "$n" = 2 ] && say "ok:   the prompt and the empty negative prompt are cached" || bad "the prompt cache holds $n entries, not 2"
run 0 "again, written otherwise" -- "$dit" generate $T --prompt "  A Red TULIP " -W 16 -H 24 -o "$tmp/t2.png"
run 0 "  the same image (lower-cased and stripped, as diffusers)" -- "$check" same "$tmp/t1.png" "$tmp/t2.png"
run 0 "another prompt" -- "$dit" generate $T --prompt "a blue sky" -W 16 -H 24 -o "$tmp/t3.png"
run 1 "  another image" -- "$check" same "$tmp/t1.png" "$tmp/t3.png"
run 0 "a negative prompt" -- "$dit" generate $T --prompt "a red tulip" --negative-prompt "blurry" -W 16 -H 24 -o "$tmp/t4.png"
run 1 "  another image" -- "$check" same "$tmp/t1.png" "$tmp/t4.png"
run 0 "inpaint from a prompt" -- "$dit" inpaint $T --prompt "a red tulip" -i "$tmp/src48.png" --mask "$tmp/mask48.png" -o "$tmp/tin.png"
"$check" outside "$tmp/src48.png" "$tmp/tin.png" "$tmp/mask48.png" >"$tmp/cmp"
read -r _ out _ in <"$tmp/cmp"
[ "$out" = 0 ] && [ "$in" -gt 0 ] && say "ok:   outside the mask untouched, $in pixels inside changed" ||
    bad "inpaint from a prompt: $(cat "$tmp/cmp")"
run 0 "img2img from a prompt" -- "$dit" img2img $T --prompt "a red tulip" -i "$tmp/src48.png" --strength 0.6 -o "$tmp/ti2i.png"
run 1 "  changed" -- "$check" same "$tmp/src48.png" "$tmp/ti2i.png"
run 2 "--class on a text model" -- "$dit" generate $T --class 3 -o "$tmp/x.png"
has "it takes --prompt, not --class" "--class on a text model"
run 2 "a text model without --prompt" -- "$dit" generate $T -o "$tmp/x.png"
has "give --prompt" "no --prompt"
run 2 "--prompt on a class model" -- "$dit" generate $P --prompt "a cat" -o "$tmp/x.png"
has "--prompt needs a text model" "--prompt on a class model"
[ -f "$tmp/x.png" ] && bad "a refused run left an output file"
# ---- expand: the mask grows 4 px outward first
run 0 "inpaint --expand 4" -- "$dit" inpaint $P -i "$tmp/src48.png" --mask "$tmp/mask48.png" --expand 4 -o "$tmp/expand.png"
"$check" mask 48 32 6 2 34 24 "$tmp/mask48x.png"
"$check" outside "$tmp/src48.png" "$tmp/expand.png" "$tmp/mask48x.png" >"$tmp/cmp"
read -r _ out _ in <"$tmp/cmp"
"$check" outside "$tmp/src48.png" "$tmp/expand.png" "$tmp/mask48.png" >"$tmp/cmp2"
read -r _ ring _ _ <"$tmp/cmp2"
[ "$out" = 0 ] && [ "$ring" -gt 0 ] && say "ok:   expand: $ring pixels changed past the mask, none past 4 px" ||
    bad "inpaint --expand: $(cat "$tmp/cmp") / $(cat "$tmp/cmp2")"
# ---- detail: sampled at 16 px, refined at the source's 48 x 32 in 16-px windows
run 0 "inpaint --detail 48" -- "$dit" inpaint $P -i "$tmp/src48.png" --mask "$tmp/mask48.png" --detail 48 -o "$tmp/detail.png"
"$check" outside "$tmp/src48.png" "$tmp/detail.png" "$tmp/mask48.png" >"$tmp/cmp"
read -r _ out _ in <"$tmp/cmp"
[ "$out" = 0 ] && [ "$in" -gt 0 ] && say "ok:   detail: outside untouched, $in pixels inside changed" ||
    bad "inpaint --detail: $(cat "$tmp/cmp")"
run 0 "inpaint without --detail" -- "$dit" inpaint $P -i "$tmp/src48.png" --mask "$tmp/mask48.png" -o "$tmp/nodetail.png"
run 1 "  differs from --detail" -- "$check" same "$tmp/detail.png" "$tmp/nodetail.png"
# ---- variations: image k is what --seed SEED + k gives alone
run 0 "inpaint --variations 3 --seed 4" -- "$dit" inpaint $P -i "$tmp/src48.png" --mask "$tmp/mask48.png" --variations 3 --seed 4 -o "$tmp/var.png"
has "variations: seeds 4 to 6" "variations"
run 0 "inpaint --seed 5 alone" -- "$dit" inpaint $P -i "$tmp/src48.png" --mask "$tmp/mask48.png" --seed 5 -o "$tmp/var5.png"
run 0 "  is variation 1" -- "$check" same "$tmp/var-1.png" "$tmp/var5.png"
run 1 "  and not variation 2" -- "$check" same "$tmp/var-2.png" "$tmp/var5.png"

# ---- encode / decode round trip vs the library
"$check" resize "$src" 32 24 "$tmp/small.png"
run 0 "encode" -- "$dit" encode --vae "$golden/vae_kl" "$tmp/small.png" -o "$tmp/lat.safetensors"
run 0 "decode" -- "$dit" decode --vae "$golden/vae_kl" "$tmp/lat.safetensors" -o "$tmp/back.png"
run 0 "encode + decode equals the library calls" -- "$check" roundtrip "$golden/vae_kl" "$tmp/small.png" "$tmp/back.png"
run 0 "encode --sample" -- "$dit" encode --vae "$golden/vae_kl" --sample --seed 3 "$tmp/small.png" -o "$tmp/lat2.safetensors"

# ---- convert: a torch.save state dict, read without running it
run 0 "convert a torch.save .pt" -- "$dit" convert "$golden/dit_convert.pt" --heads 2 -o "$tmp/conv.safetensors"
run 0 "  its forward equals the PyTorch reference" -- "$check" forward "$tmp/conv.safetensors" "$golden/dit_convert.io.safetensors"
run 0 "info on the converted model" -- "$dit" info "$tmp/conv.safetensors"
has "naming:           official" "converted naming"
run 2 "a pickle with a forbidden global is refused" -- "$dit" convert "$golden/bad_global.pt" -o "$tmp/bad.safetensors"
has "refusing pickle global 'argparse.Namespace'" "forbidden global"
run 2 "a pickle with a forbidden opcode is refused" -- "$dit" convert "$golden/bad_opcode.pt" -o "$tmp/bad.safetensors"
has "refusing pickle opcode 0x8f" "forbidden opcode"
[ -e "$tmp/bad.safetensors" ] && bad "a refused conversion left a file"

# ---- train and validate on a tiny image folder
mkdir -p "$tmp/data/a" "$tmp/data/b"
for i in 1 2 3; do
    "$check" mask 8 8 1 1 $((i + 2)) 4 "$tmp/data/a/$i.png"
    "$check" mask 8 8 2 2 6 $((i + 3)) "$tmp/data/b/$i.png"
done
run 0 "train on an image folder" -- "$dit" train --data "$tmp/data" --channels 1 --size 8 --patch 2 --hidden 32 --depth 1 --heads 2 --batch 4 --steps 6 --every 3 --validate-every 0 --quiet --out "$tmp/run"
[ -f "$tmp/run/model/model.safetensors" ] && [ -f "$tmp/run/model/labels.txt" ] && say "ok:   exported model + labels" || bad "train did not export the model"
run 0 "resume to step 8" -- "$dit" train --data "$tmp/data" --channels 1 --size 8 --resume --steps 8 --quiet --out "$tmp/run"
has "resuming at step 6" "resume"
run 0 "generate with the trained pixel model by label" -- "$dit" generate -m "$tmp/run/model" --class b --steps 3 -o "$tmp/tiny.png"
# outputs are written through a temp file, but get the usual mode (0666 less the umask)
[ "$(stat -c %a "$tmp/tiny.png")" = "$(printf %o $((0666 & ~$(umask))))" ] && [ "$(stat -c %a "$tmp/run/model/model.safetensors")" = "$(printf %o $((0666 & ~$(umask))))" ] && say "ok:   output files get 0666 less the umask" || bad "output file mode $(stat -c %a "$tmp/tiny.png") with umask $(umask)"
run 0 "validate" -- "$dit" validate -m "$tmp/run/model" --data "$tmp/data" --samples 2 --steps 2 --train-log "$tmp/run/log.jsonl" -o "$tmp/val"
has '"class_agreement": ' "validate JSON"
[ -f "$tmp/val/grid.png" ] && [ -f "$tmp/val/loss.png" ] && say "ok:   grid and loss curve written" || bad "validate wrote no grid/loss curve"

# ---- the conditioning variants, unconditional and learned-sigma models
V="--data $tmp/data --channels 1 --size 8 --patch 2 --hidden 32 --depth 1 --heads 2 --batch 4 --steps 3 --every 3 --validate-every 0 --quiet"
for cond in adaln in-context cross-attn; do
    run 0 "train $cond" -- "$dit" train $V --conditioning $cond --out "$tmp/v-$cond"
    run 0 "  info" -- "$dit" info "$tmp/v-$cond/model"
    has "DiT ($cond, class-conditional)" "info of a $cond model"
    run 0 "  generate with it" -- "$dit" generate -m "$tmp/v-$cond/model" --class b --steps 2 -o "$tmp/v-$cond.png"
done
run 0 "train unconditional" -- "$dit" train $V --unconditional --out "$tmp/v-uncond"
run 0 "  info" -- "$dit" info "$tmp/v-uncond/model"
has "unconditional" "info of an unconditional model"
run 0 "  generate without a class" -- "$dit" generate -m "$tmp/v-uncond/model" --steps 2 -o "$tmp/v-uncond.png"
run 0 "  validate (no class agreement)" -- "$dit" validate -m "$tmp/v-uncond/model" --data "$tmp/data" --samples 2 --steps 2 -o "$tmp/v-uncond-val"
has '"unconditional": true' "validate of an unconditional model"
run 2 "  --class is refused" -- "$dit" generate -m "$tmp/v-uncond/model" --class b --steps 2 -o "$tmp/v-uncond2.png"
has "unconditional" "--class with an unconditional model"
run 0 "train learned sigma (hybrid loss)" -- "$dit" train $V --objective eps_mse --learn-sigma --out "$tmp/v-sigma"
run 0 "  info" -- "$dit" info "$tmp/v-sigma/model"
has "(learned sigma)" "info of a learned-sigma model"
run 0 "  sample with its learned variance (DDPM)" -- "$dit" generate -m "$tmp/v-sigma/model" --class b --sampler ddpm --steps 3 -o "$tmp/v-sigma.png"
run 1 "learned sigma with x0_l1 is refused" -- "$dit" train $V --objective x0_l1 --learn-sigma --out "$tmp/v-bad"
has "hybrid loss" "learned sigma + x0_l1"
run 1 "an unknown conditioning is refused" -- "$dit" train $V --conditioning film --out "$tmp/v-bad2"
has "--conditioning must be" "unknown conditioning"

# ---- labels from a CSV, flips, and training in a VAE's latent space
printf 'file,label\na/1.png,round\na/2.png,round\nb/1.png,square\nb/2.png,square\n' > "$tmp/labels.csv"
run 0 "train on latents with CSV labels" -- "$dit" train --data "$tmp/data" --labels-csv "$tmp/labels.csv" --vae "$golden/vae_tiny" --size 16 --patch 1 --hidden 32 --depth 1 --heads 2 --batch 4 --steps 3 --every 3 --validate-every 0 --flip --quiet --out "$tmp/lrun"
has "encoding train 4/4" "latents encoded"
[ -L "$tmp/lrun/model/vae" ] && grep -qx square "$tmp/lrun/model/labels.txt" && say "ok:   latent model links its VAE, CSV classes" || bad "latent model export"
run 0 "resume reuses the latent cache" -- "$dit" train --data "$tmp/data" --labels-csv "$tmp/labels.csv" --vae "$golden/vae_tiny" --size 16 --resume --steps 4 --quiet --out "$tmp/lrun"
has "latents from" "latent cache reused"
run 0 "generate with the latent model through its VAE" -- "$dit" generate -m "$tmp/lrun/model" --class square --steps 2 -o "$tmp/latent.png"
"$check" dims "$tmp/latent.png" 16 16 && say "ok:   16x16 decoded image" || bad "latent model output size"
printf 'a/1.png,round\nnotes.txt,x\n' > "$tmp/bad.csv"
run 2 "a CSV naming a non-PNG file is refused" -- "$dit" train --data "$tmp/data" --labels-csv "$tmp/bad.csv" --size 8 --steps 1 --quiet --out "$tmp/badrun"
has "notes.txt is not a PNG file" "CSV error"

# ---- labels
run 0 "labels" -- "$dit" labels -m "$tmp/pipe" --labels "$tmp/labels.txt"
has "3	dog, puppy" "labels"

# ---- the documented errors
run 1 "no --output" -- "$dit" generate $P
run 1 "bad --sampler lists the choices" -- "$dit" generate $P --sampler magic -o "$tmp/x.png"
has "ddpm ddim dpm++2m euler cold" "sampler choices"
run 2 "missing input image" -- "$dit" img2img $P -i "$tmp/nope.png" -o "$tmp/x.png"
has "nope.png" "names the file"
head -c 60 "$src" >"$tmp/trunc.png"
run 2 "truncated PNG" -- "$dit" img2img $P -i "$tmp/trunc.png" -o "$tmp/x.png"
has "trunc.png" "names the file"
"$check" mask 20 20 2 2 5 5 "$tmp/small-mask.png"
run 2 "mask size mismatch" -- "$dit" inpaint $P -i "$src" --mask "$tmp/small-mask.png" -o "$tmp/x.png"
has "the mask is 20x20 but the image is" "mask mismatch"
run 2 "unknown class name" -- "$dit" generate $P --labels "$tmp/labels.txt" --class zebra -o "$tmp/x.png"
has "unknown class 'zebra'" "unknown class"
run 2 "class out of range" -- "$dit" generate $P --class 42 -o "$tmp/x.png"
mkdir -p "$tmp/trunc-pipe/transformer"
head -c 5000 "$golden/dit_diffusers_p2/diffusion_pytorch_model.safetensors" >"$tmp/trunc-pipe/transformer/diffusion_pytorch_model.safetensors"
cp "$golden/dit_diffusers_p2/config.json" "$tmp/trunc-pipe/transformer/"
run 3 "truncated model" -- "$dit" generate -m "$tmp/trunc-pipe" --vae "$golden/vae_kl" -o "$tmp/x.png"
has "truncated" "truncated model"
"$check" resize "$src" 45 30 "$tmp/odd.png"
"$check" mask 45 30 5 5 20 20 "$tmp/odd-mask.png"
run 2 "--resize none needs a valid size" -- "$dit" inpaint $P -i "$tmp/odd.png" --mask "$tmp/odd-mask.png" --resize none -o "$tmp/x.png"
# --device cuda: exit 3 with the reason, unless built with CUDA on a machine with a device
if "$dit" generate $P --device cuda -o "$tmp/cu.png" >"$tmp/out" 2>&1; then
    say "ok: --device cuda ran (CUDA build with a device)"
else
    run 3 "--device cuda without CUDA" -- "$dit" generate $P --device cuda -o "$tmp/x.png"
    has "CUDA" "--device cuda without CUDA"
    [ -f "$tmp/x.png" ] && bad "a failed run left an output file"
fi
run 1 "--device tpu" -- "$dit" generate $P --device tpu -o "$tmp/x.png"
has "cpu, cuda or auto" "--device tpu"

# ---- Ctrl-C: exit 4 after the current step, nothing written
# (the signal goes once the first step is reported: on a loaded machine a
# fixed sleep could land before the run starts). Five heap layouts
# (MALLOC_PERTURB_): a signal handled on the thread it landed on, inside
# oneDNN's JIT code, corrupted the heap in about one run of three.
for mp in 90 165 255 202 57; do
    # the last run's output goes first: its "step" lines would send the
    # signal before this run has started (exit 130, the old text shown)
    rm -f "$tmp/int.png" "$tmp/out"
    MALLOC_PERTURB_=$mp "$dit" generate -m "$tmp/pipe" -W 128 -H 128 --steps 1000 --sampler ddim --progress json -o "$tmp/int.png" >"$tmp/out" 2>&1 &
    pid=$!
    for _ in $(seq 600); do grep -qs '"step"' "$tmp/out" && break; sleep 0.1; done
    kill -INT $pid
    wait $pid
    rc=$?
    if [ $rc -eq 4 ] && [ ! -f "$tmp/int.png" ] && grep -q "nothing written" "$tmp/out"; then say "ok: SIGINT stops cleanly (exit 4, no file; MALLOC_PERTURB_=$mp)"
    else bad "SIGINT (MALLOC_PERTURB_=$mp): exit $rc, file $( [ -f "$tmp/int.png" ] && echo present || echo absent)"; sed 's/^/    /' "$tmp/out"; fi
done

echo "$fails failure(s)"
[ "$fails" -eq 0 ]
