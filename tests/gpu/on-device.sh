#!/usr/bin/env bash
# Build gimp-dit with the CUDA backend on a lent GPU machine, run the gpu
# suite there, and leave logs and results in $OUT. One script, two steps:
#
#   1. here, on a machine with Debian's package registry (a developer's):
#        tests/gpu/on-device.sh prepare
#      The GPU machine reaches no registry and has no meson, GLib, json-glib,
#      OpenBLAS, libpng or cairo development files (it has gcc, nvcc,
#      cuBLAS, ninja and python3). This downloads the Debian 12 .deb files
#      of those libraries and a meson wheel into .device/ (git-ignored,
#      about 30 MB).
#   2. there, through the device tool's `run` with carry [".device"], two
#      calls that each fit in one 10-minute command:
#        bash tests/gpu/on-device.sh          (build, gpu suite: about 4 min)
#        bash tests/gpu/on-device.sh bench    (benchmarks on that build)
#      It unpacks the .debs into a private sysroot (nothing is installed
#      into /), points pkg-config at it, configures with -Dcuda=enabled,
#      builds, runs `meson test --suite gpu`, and writes to $OUT:
#        summary.txt   what ran, how long, the verdict, the benchmark lines
#        device.txt    the GPU, its compute capability, driver, nvcc, and the
#                      CUDA libraries the test binaries resolve
#        setup.log, build.log, test-gpu.log, testlog.txt (meson's, per test)
#        bench-{dit,vae,train}-{fp32,bf16}.txt, bench-pixart.txt   the GPU
#                      benchmarks (step 5)
#      It exits non-zero if the build or any gpu test fails (a SKIP there
#      means no device was seen: also a failure on this machine).
#      Budget: about 1 minute to unpack and configure, 2-3 to build on 16
#      cores (five GPU architectures), under a minute of tests; the bench
#      call: six benchmarks of at most 70 s each and the text pipeline's of at
#      most 100 s (under 9.5 minutes with the build's check).
#
# The sysroot's libraries are Debian 12's, built for glibc 2.36; the GPU
# machine's newer glibc runs them. Test binaries find them through an
# RPATH (DT_RPATH, so their dependencies resolve there too); nothing else
# on the machine sees them.
set -uo pipefail
cd "$(dirname "$0")/../.."

DEV_DIR=.device
# the build's libraries (-dev) and the shared libraries they pull in; the
# toolchain's own (libc, libgcc, libstdc++, libgomp) are the machine's
DEBS=(
    pkgconf-bin libpkgconf3
    libglib2.0-dev libglib2.0-0 libpcre2-8-0 libffi8 libmount1 libblkid1 libselinux1
    zlib1g-dev zlib1g
    libjson-glib-dev libjson-glib-1.0-0
    libopenblas-openmp-dev libopenblas0-openmp libgfortran5 libquadmath0
    libpng-dev libpng16-16
    libcairo2-dev libcairo2 libpixman-1-0 libfontconfig1 libfreetype6 libbrotli1 libbz2-1.0
    libexpat1 libuuid1 libxcb1 libxcb-render0 libxcb-shm0 libxrender1 libx11-6 libxext6
    libxau6 libxdmcp6 libbsd0 libmd0
)
MESON_VERSION=1.4.1

prepare() {
    mkdir -p "$DEV_DIR/debs" "$DEV_DIR/wheels"
    grep -qxF "/$DEV_DIR/" .git/info/exclude 2>/dev/null || echo "/$DEV_DIR/" >>.git/info/exclude
    apt-get update -qq || return 1
    (cd "$DEV_DIR/debs" && rm -f ./*.deb && apt-get download -qq "${DEBS[@]}") || return 1
    rm -f "$DEV_DIR"/wheels/*.whl
    python3 -m pip download -q --no-deps --only-binary=:all: -d "$DEV_DIR/wheels" \
        "meson==$MESON_VERSION" || return 1
    du -sh "$DEV_DIR"
    echo "now: device run, carry [\"$DEV_DIR\"], command: bash tests/gpu/on-device.sh"
}

if [ "${1:-}" = prepare ]; then
    prepare
    exit
fi

# ---- on the GPU machine ------------------------------------------------------
MODE=${1:-suite}
OUT=${OUT:-/tmp/dit-out}
SR=${DIT_SYSROOT:-/tmp/dit-sysroot}
BUILD=${DIT_BUILD:-build-gpu}
mkdir -p "$OUT"
start=$(date +%s)
log() { echo "[$(($(date +%s) - start)) s] $*" | tee -a "$OUT/summary.txt"; }
die() {
    log "FAILED: $*"
    exit 1
}

ls "$DEV_DIR"/debs/*.deb >/dev/null 2>&1 ||
    die "no $DEV_DIR/debs: run 'tests/gpu/on-device.sh prepare' here first and carry $DEV_DIR"

export PATH=/usr/local/cuda/bin:$PATH
# the CUDA libraries: binaries carry them in their RPATH (below), and
# anything else run here finds them through LD_LIBRARY_PATH
CUDA_LIBS=/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib
export LD_LIBRARY_PATH=$CUDA_LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
{
    nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.max.sm --format=csv
    nvcc --version | tail -2
    uname -srm
    gcc --version | head -1
} >"$OUT/device.txt" 2>&1
log "device: $(nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader 2>/dev/null | head -1)"

bench() {
    # GPU benchmarks: DiT-XL/2 forward at 256x256, batch 2 (a CFG pair) and
    # a whole 50-step sample with an SD-VAE-shaped decoder, that decoder at
    # 512x512, and training steps of the embedded model's architecture, in
    # fp32 and bf16 products. PyTorch is not on this machine, so each prints
    # "PyTorch reference: skipped"; where torch with CUDA is installed,
    # DIT_TORCH_PYTHON gives the ratios on the same GPU.
    [ -x "$BUILD/tests/bench/bench-dit" ] || die "no build in $BUILD: run the suite call first"
    for precision in fp32 bf16; do
        for b in dit vae train; do
            f="$OUT/bench-$b-$precision.txt"
            DIT_BENCH_DEVICE=cuda DIT_BENCH_PRECISION=$precision DIT_BENCH_ITERS=5 \
                DIT_BENCH_TILED="" DIT_BENCH_SAMPLE_STEPS=50 timeout 70 "$BUILD/tests/bench/bench-$b" >"$f" 2>&1 ||
                log "bench-$b $precision: exit $? (see $(basename "$f"))"
            grep -E "^(device|libdit)" "$f" | tee -a "$OUT/summary.txt"
        done
    done
    # the text pipeline: a PixArt-alpha-XL/2-512-shaped transformer, all 28
    # blocks, forward and a whole 20-step 512x512 sample (fp32, then bf16)
    f="$OUT/bench-pixart.txt"
    DIT_BENCH_DEVICE=cuda DIT_BENCH_ITERS=5 DIT_BENCH_PIXART_DEPTH=28 DIT_BENCH_SAMPLE_STEPS=20 \
        timeout 100 "$BUILD/tests/bench/bench-pixart" >"$f" 2>&1 ||
        log "bench-pixart: exit $? (see $(basename "$f"))"
    grep -E "^(device|libdit)" "$f" | tee -a "$OUT/summary.txt"
    log "benchmarks done"
}
if [ "$MODE" = bench ]; then
    bench
    exit 0
fi

# 1. the sysroot
rm -rf "$SR"
mkdir -p "$SR"
for f in "$DEV_DIR"/debs/*.deb; do
    dpkg-deb -x "$f" "$SR" || die "unpacking $f"
done
# absolute links (libz.so -> /lib/...) must stay inside the sysroot
find "$SR" -type l | while read -r l; do
    t=$(readlink "$l")
    case $t in /*) ln -sfn "$SR$t" "$l" ;; esac
done
# shared linking only: the static-only dependencies need not be present
find "$SR" -name '*.pc' -exec sed -i '/^Requires.private:/d' {} +
LIBDIRS="$SR/usr/lib/x86_64-linux-gnu:$SR/lib/x86_64-linux-gnu:$SR/usr/lib/x86_64-linux-gnu/openblas-openmp:$CUDA_LIBS"
cat >"$SR/pkg-config" <<EOF
#!/bin/sh
LD_LIBRARY_PATH=$SR/usr/lib/x86_64-linux-gnu:$SR/lib/x86_64-linux-gnu exec $SR/usr/bin/pkgconf "\$@"
EOF
chmod +x "$SR/pkg-config"
export PKG_CONFIG="$SR/pkg-config" PKG_CONFIG_SYSROOT_DIR="$SR"
export PKG_CONFIG_LIBDIR="$SR/usr/lib/x86_64-linux-gnu/pkgconfig:$SR/usr/share/pkgconfig:$SR/usr/lib/x86_64-linux-gnu/openblas-openmp/pkgconfig"
# link flags per linker: gcc takes -Wl, nvcc (it links whatever uses kernels/) -Xlinker=
LINK_C="['-Wl,--disable-new-dtags', '-Wl,-rpath,$LIBDIRS', '-Wl,-rpath-link,$LIBDIRS']"
LINK_CUDA="['-Xlinker=--disable-new-dtags', '-Xlinker=-rpath=$LIBDIRS', '-Xlinker=-rpath-link=$LIBDIRS']"
unset LDFLAGS
"$PKG_CONFIG" --exists glib-2.0 json-glib-1.0 openblas libpng zlib cairo ||
    die "the sysroot's pkg-config files are incomplete"

# 2. meson from the carried wheel
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/dit-meson \
    "$DEV_DIR"/wheels/meson-*.whl >"$OUT/pip.log" 2>&1 || die "installing meson (see pip.log)"
export PYTHONPATH=/tmp/dit-meson${PYTHONPATH:+:$PYTHONPATH}
MESON=(python3 /tmp/dit-meson/bin/meson)
log "sysroot and meson $("${MESON[@]}" --version) ready"

# 3. configure and build
rm -rf "$BUILD"
"${MESON[@]}" setup "$BUILD" -Dcuda=enabled -Donednn=disabled -Dgimp=disabled -Dgtk=disabled -Dnls=disabled \
    -Dc_link_args="$LINK_C" -Dcpp_link_args="$LINK_C" -Dcuda_link_args="$LINK_CUDA" \
    >"$OUT/setup.log" 2>&1 || die "meson setup (see setup.log)"
grep -qiE "CUDA backend *: *(yes|true)" "$OUT/setup.log" || die "configured without CUDA"
log "configured"
ninja -C "$BUILD" ${DIT_JOBS:+-j "$DIT_JOBS"} >"$OUT/build.log" 2>&1 || die "build (see build.log)"
log "built"
{
    echo "libraries of the CUDA module and the CLI:"
    # the CUDA libraries are the module's (the CLI opens it at run time)
    ldd "$BUILD/kernels/libdit-cuda.so" "$BUILD/core/cli/dit" | grep -Ei "^/|cuda|cublas|openblas|gomp"
} >>"$OUT/device.txt" 2>&1

# 4. the gpu suite
status=0
"${MESON[@]}" test -C "$BUILD" --suite gpu --print-errorlogs --no-rebuild \
    >"$OUT/test-gpu.log" 2>&1 || status=1
cp "$BUILD/meson-logs/testlog.txt" "$OUT/testlog.txt" 2>/dev/null
grep -E "^ *[0-9]+/[0-9]+ " "$OUT/test-gpu.log" | tee -a "$OUT/summary.txt"
if grep -qE "^Skipped: +[1-9]" "$OUT/test-gpu.log"; then
    log "a gpu test skipped: no CUDA device seen (see testlog.txt)"
    status=1
fi

# 5. the benchmarks run in the second call (MODE bench), each call inside
# the device tool's 10 minutes; DIT_BENCH=1 runs them here as well
if [ "${DIT_BENCH:-0}" = 1 ] && [ $status = 0 ]; then
    bench
fi

log "done: gpu suite $([ $status = 0 ] && echo passed || echo FAILED)"
exit $status
