#!/bin/sh
# `dit info` and the CLI's exit codes, driven through the real binary.
# usage: test-info.sh DIT_BINARY GOLDEN_DIR
set -u
dit=$1
golden=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

. "$(dirname "$0")/expect.sh"

expect 0 "--help" -- "$dit" --help
has_text "info" "--help lists info"
expect 0 "--version" -- "$dit" --version
has_text "dit 0." "--version"
expect 1 "no command" -- "$dit"
expect 1 "unknown command" -- "$dit" frobnicate
has_text "unknown command 'frobnicate'" "unknown command"
expect 0 "info --help" -- "$dit" info --help
has_text "Examples:" "info --help shows examples"
expect 1 "info without a model" -- "$dit" info
expect 1 "info with a bad flag" -- "$dit" info --bogus x

# --device: this machine, no MODEL; capped at AVX2 oneDNN says so and bf16 is
# off with the reason
expect 0 "info --device" -- "$dit" info --device
has_text "fp32 products:" "info --device names the fp32 library"
has_text "--precision auto:" "info --device says what auto picks"
expect 0 "info --device --json" -- "$dit" info --device --json
has_text '"cpu_isa": "' "info --device --json"
if "$dit" info --device --json | grep -q '"onednn": true'; then
    expect 0 "info --device, AVX2 cap" -- env ONEDNN_MAX_CPU_ISA=AVX2 "$dit" info --device --json
    has_text '"cpu_isa": "avx2"' "oneDNN capped at AVX2"
    has_text '"bf16": false, "bf16_why": "this processor has no bf16' "bf16 off with the reason"
    has_text '"auto_precision_cpu": "fp32"' "auto is fp32 without bf16"
fi

expect 0 "info official (BF16)" -- "$dit" info "$golden/dit_official_p2.safetensors"
has_text "naming:           official" "official naming"
has_text "BF16" "dtype"
has_text "num_heads:        4 (head dim 24)" "heads from __metadata__"
has_text "divisor half-0" "official timestep divisor"

expect 0 "info diffusers folder" -- "$dit" info "$golden/dit_diffusers_p4"
has_text "naming:           diffusers" "diffusers naming"
has_text "num_heads:        2 (head dim 72)" "heads from config.json"
has_text "F16" "dtype"
has_text "divisor half-1" "diffusers timestep divisor"

expect 0 "info --json" -- "$dit" info --json "$golden/dit_official_p8.safetensors"
has_text '"depth": 2' "json depth"
has_text '"learn_sigma": true' "json learn_sigma"
has_text '"patch_size": 8' "json patch"

expect 2 "info on a missing file" -- "$dit" info "$tmp/nope.safetensors"
has_text "no such file" "missing file message"

head -c 100 "$golden/dit_official_p8.safetensors" >"$tmp/truncated.safetensors"
expect 3 "info on a truncated file" -- "$dit" info "$tmp/truncated.safetensors"
has_text "truncated.safetensors" "message names the file"

printf 'not a model at all' >"$tmp/junk.safetensors"
expect 3 "info on junk" -- "$dit" info "$tmp/junk.safetensors"

echo "$fails failure(s)"
[ "$fails" -eq 0 ]
