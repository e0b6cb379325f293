#!/usr/bin/env python3
"""How inpainting blends on the default model, for each blending setting,
in one run: `dit validate --inpaint` on held-out Fashion-MNIST images (the
top half regenerated with the image's class and with the next class), two
settings at a time on one thread each. Prints a table: the seam (the mean
brightness step across the mask's edge, [0, 1] units) against the real
images' step there, the class agreement of both kinds of result, and the
same for real halves (the next class's real top over the kept bottom: what
a perfect result of this layout scores), and the class agreement of the
regenerated top half alone (by its nearest training top half).

usage: bench-blend.py DIT MODEL   ($DIT_BENCH_BLEND_SAMPLES per class, 20)"""
import json
import os
import subprocess
import sys

R0 = ["--mask-mode", "regenerate", "--feather", "0"]
D0 = ["--mask-mode", "differential", "--feather", "0"]
SETTINGS = [
    ("regenerate, no feather (the defaults before)", R0),
    ("differential, feather auto (the defaults now)", []),
    ("differential", D0),
    ("regenerate, feather 4", R0[:2] + ["--feather", "4"]),
    ("differential, feather 2", D0[:2] + ["--feather", "2"]),
    ("differential, feather 4", D0[:2] + ["--feather", "4"]),
    ("regenerate, colour match", R0 + ["--colour-match"]),
    ("regenerate, resample 5 x 2", R0 + ["--resample-jump", "5", "--resample-count", "2"]),
    ("differential, feather auto, resample 5 x 2", ["--resample-jump", "5", "--resample-count", "2"]),
    ("differential, feather auto, colour match", ["--colour-match"]),
]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    dit, model = sys.argv[1:]
    samples = os.environ.get("DIT_BENCH_BLEND_SAMPLES", "20")
    results = {}
    for i in range(0, len(SETTINGS), 2):
        runs = []
        for name, args in SETTINGS[i:i + 2]:
            cmd = [dit, "validate", "-m", model, "--inpaint", "--samples", samples, "-g", "4",
                   "-t", "1"] + args
            runs.append((name, subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                                stderr=subprocess.DEVNULL, text=True)))
        for name, proc in runs:
            out, _ = proc.communicate()
            line = [l for l in out.splitlines() if l.startswith("{")]
            if proc.returncode or not line:
                print(f"{name}: dit validate failed (exit {proc.returncode})")
                continue
            results[name] = json.loads(line[-1])["inpaint"]
            print(f"measured: {name}: {json.dumps(results[name])}", flush=True)
    if not results:
        sys.exit(1)
    any_r = next(iter(results.values()))
    real = any_r["seam_real"]
    print(f"\n{any_r['images']} images, {any_r['steps']} steps, guidance {any_r['guidance']}; "
          f"real images' step at the edge rows {real:.3f}; real halves: seam "
          f"{any_r['seam_real_halves']:.3f} ({any_r['seam_real_halves'] / real:.1f}x), "
          f"agreement {100 * any_r['agreement_real_halves']:.0f}%\n")
    print(f"regenerated half alone, real halves: "
          f"{100 * any_r['region_agreement_real_halves']:.0f}%\n")
    print("| setting | seam, true class | seam, other class | agreement, true | "
          "agreement, other | regenerated half: true | regenerated half: other | kept half |")
    print("|---|---|---|---|---|---|---|---|")
    for name, _ in SETTINGS:
        r = results.get(name)
        if r:
            print(f"| {name} | {r['seam_true_class']:.3f} ({r['seam_true_class'] / real:.1f}x) | "
                  f"{r['seam_other_class']:.3f} ({r['seam_other_class'] / real:.1f}x) | "
                  f"{100 * r['agreement_true_class']:.0f}% | "
                  f"{100 * r['agreement_other_class']:.0f}% | "
                  f"{100 * r['region_agreement_true_class']:.0f}% | "
                  f"{100 * r['region_agreement_other_class']:.0f}% | "
                  f"{'bit for bit' if r['kept_max_change'] == 0 else r['kept_max_change']} |")


if __name__ == "__main__":
    main()
