"""Start-up shared by the PyTorch reference scripts of the benchmarks:
--threads / --device / --precision, importing torch with those settings in
place, and a timer that waits for the GPU.

--precision maps onto torch.set_float32_matmul_precision, which picks the
same cuBLAS compute types as libdit's dit_ctx_set_precision: fp32 ->
"highest" (CUBLAS_COMPUTE_32F), tf32 -> "high" (FAST_TF32), bf16 ->
"medium" (FAST_16BF). On the CPU, bf16 runs the timed work under
torch.autocast("cpu", dtype=torch.bfloat16), the one line a PyTorch user
writes for it (oneDNN bf16 products, fp32 elsewhere), as libdit's CPU bf16.
"""
import contextlib
import os
import statistics
import sys
import time

MATMUL_PRECISION = {"fp32": "highest", "tf32": "high", "bf16": "medium"}


def add_args(ap):
    ap.add_argument("--threads", required=True, type=int, help="CPU threads (intra-op)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--precision", choices=tuple(MATMUL_PRECISION), default="fp32",
                    help="float32 matrix products on CUDA")


def import_torch(args, script, extra=""):
    """Returns torch set up for args, or exits 3 with a one-line reason on
    stderr (no torch, no CUDA device). `extra` names the other packages the
    caller imports next, for that message."""
    # The thread count has to be in the environment before torch loads its
    # OpenMP / MKL runtimes.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    try:
        import torch
    except Exception as e:  # ImportError, or a broken install raising something else
        print(f"{script}: cannot import torch{extra}: {e}", file=sys.stderr)
        sys.exit(3)
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"{script}: --device cuda but torch sees no CUDA device", file=sys.stderr)
        sys.exit(3)
    torch.set_float32_matmul_precision(MATMUL_PRECISION[args.precision])
    return torch


def clock(torch, device):
    """perf_counter in ms, after the device's queued work has finished"""
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() * 1000.0


def add_inference_args(ap):
    """--warmup, --iters, --output of the forward / decode scripts"""
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--output", help="write the last output as `out` (F32) here")


def check_inference_args(ap, a):
    if a.threads < 1 or a.iters < 1 or a.warmup < 0:
        ap.error("--threads and --iters must be >= 1, --warmup >= 0")


def import_diffusers(args, script):
    """torch (as import_torch), diffusers with its logging quietened, and
    safetensors' load_file and save_file; exits 3 when one is missing"""
    torch = import_torch(args, script, "/diffusers/safetensors")
    try:
        import diffusers
        from safetensors.torch import load_file, save_file
    except Exception as e:  # ImportError, or a broken install raising something else
        print(f"{script}: cannot import diffusers/safetensors: {e}", file=sys.stderr)
        sys.exit(3)
    diffusers.utils.logging.set_verbosity_error()
    return torch, diffusers, load_file, save_file


def autocast(torch, args):
    """the context the timed work runs in: CPU bf16 under autocast"""
    if args.device == "cpu" and args.precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def time_runs(torch, args, fn):
    """fn() --warmup times untimed, then --iters times timed, under
    inference_mode; returns (fn's last result, the JSON fields ms, ms_min,
    threads, device, precision, torch)"""
    times, result = [], None
    with torch.inference_mode(), autocast(torch, args):
        for i in range(args.warmup + args.iters):
            t0 = clock(torch, args.device)
            result = fn()
            if hasattr(result, "float"):  # an autocast result may be bf16
                result = result.float()
            dt = clock(torch, args.device) - t0
            if i >= args.warmup:
                times.append(dt)
    return result, {"ms": round(statistics.median(times), 4), "ms_min": round(min(times), 4),
                    "threads": args.threads, "device": args.device, "precision": args.precision,
                    "torch": torch.__version__}
