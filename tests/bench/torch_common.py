"""Start-up shared by the PyTorch reference scripts of the benchmarks:
--threads / --device / --precision, importing torch with those settings in
place, and a timer that waits for the GPU.

--precision maps onto torch.set_float32_matmul_precision, which picks the
same cuBLAS compute types as libdit's dit_ctx_set_precision: fp32 ->
"highest" (CUBLAS_COMPUTE_32F), tf32 -> "high" (FAST_TF32), bf16 ->
"medium" (FAST_16BF). It changes nothing on the CPU.
"""
import os
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


def fail_import(script, what, e):
    print(f"{script}: cannot import {what}: {e}", file=sys.stderr)
    sys.exit(3)
