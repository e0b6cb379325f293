#!/usr/bin/env python3
"""The gimp suite: dit-gimp in real GIMP 2.10, and the GTK3 dialog.

    test-gimp.py CASE --plugin EXE --check PNG-CHECK --dialog-shot EXE \
                 --srcdir SRC --outdir DIR

CASE is one of:
  batch   inpaint (rectangle, feathered, 16-bit, 32-bit float linear, gray,
          layer offsets + alpha),
          img2img (whole layer with the default model, selection), generate:
          a new layer exists with the right name, size and offsets, pixels
          outside the selection are bit-identical to the source layer, pixels
          inside changed, the source alpha is kept
  errors  empty selection, indexed image, selection off the layer, layer
          group, unknown class, CUDA device, missing model: each gives its
          documented message on GIMP's stderr and adds no layer
  ui      GIMP with its UI under Xvfb: an interactive run opens the GTK3
          dialog inside the plug-in, OK (Alt+O, sent with xdotool) runs it;
          one Ctrl+Z removes the new layer and nothing else, Ctrl+Y brings
          it back; a run with the last values adds another layer
  dialog  the dialog under Xvfb, screenshot saved as OUTDIR/dit-dialog.png
          and checked to be a real, non-blank PNG
  i18n    LANGUAGE=zh_CN: the dialog's texts and the plug-in's error message
          come out in Chinese (de and fr titles too)

Every GIMP run has its own temporary profile ($HOME) with the plug-in copied
into it, as `meson install` would, and is initialised by a first
`(gimp-quit 0)` run. GIMP's batch exit code is always 0, so the verdicts
come from the files the Script-Fu writes and from GIMP's stderr. The test
model is assembled from the golden fixtures: transformer/ =
tests/golden/dit_diffusers_p2 (10 classes, 8x8 latent), vae/ =
tests/golden/vae_kl (factor 2), labels.txt = data/labels/fashion-mnist.txt;
native size 16x16 pixels. Exit 77 (skip) when ../shared/data/photos, GIMP or
Xvfb is missing.
"""
import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

SKIP = 77
GIMP = "gimp-console-2.10"
PHOTOS = ("chelsea.png", "coffee.png", "astronaut.png")


class Failure(Exception):
    pass


def log(*a):
    print(*a, flush=True)


# ---- setup -------------------------------------------------------------------


def photos_dir(srcdir):
    d = os.path.normpath(os.path.join(srcdir, "..", "shared", "data", "photos"))
    if not all(os.path.isfile(os.path.join(d, p)) for p in PHOTOS):
        log(f"SKIP: the test photos are not in {d}")
        sys.exit(SKIP)
    return d


def make_model(srcdir, root):
    """A pipeline folder from the golden fixtures (symlinks, nothing copied)."""
    golden = os.path.join(srcdir, "tests", "golden")
    model = os.path.join(root, "models", "default")
    os.makedirs(model)
    os.symlink(os.path.join(golden, "dit_diffusers_p2"), os.path.join(model, "transformer"))
    os.symlink(os.path.join(golden, "vae_kl"), os.path.join(model, "vae"))
    shutil.copy(os.path.join(srcdir, "data", "labels", "fashion-mnist.txt"),
                os.path.join(model, "labels.txt"))
    return model


class Profile:
    """A throw-away GIMP profile with the plug-in installed."""

    def __init__(self, args, root, lang=None):
        if not shutil.which(GIMP):
            log(f"SKIP: {GIMP} is not installed")
            sys.exit(SKIP)
        self.root = root
        self.home = os.path.join(root, "home")
        os.makedirs(self.home, exist_ok=True)
        self.env = dict(os.environ)
        for k in ("DISPLAY", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME",
                  "GIMP2_DIRECTORY", "LANGUAGE", "LC_ALL", "LC_MESSAGES"):
            self.env.pop(k, None)
        self.env.update({
            "HOME": self.home,
            "XDG_CONFIG_HOME": os.path.join(self.home, ".config"),
            "XDG_DATA_HOME": os.path.join(self.home, ".local", "share"),
            "XDG_CACHE_HOME": os.path.join(self.home, ".cache"),
            "LANG": "C.UTF-8",
            # the test model is tiny: more threads only add waiting on a busy machine
            "OMP_NUM_THREADS": "1",
        })
        if lang:
            self.env["LANGUAGE"] = lang
        # initialise the profile, then install the plug-in as meson install does
        self.gimp(["(gimp-quit 0)"], what="profile init")
        plugdir = os.path.join(self.home, ".config", "GIMP", "2.10", "plug-ins", "dit-gimp")
        os.makedirs(plugdir, exist_ok=True)
        shutil.copy(args.plugin, os.path.join(plugdir, "dit-gimp"))

    def gimp(self, commands, what, timeout=120):
        cmd = [GIMP, "-i", "--no-fonts"]
        for c in commands:
            cmd += ["-b", c]
        t0 = time.time()
        try:
            p = subprocess.run(cmd, env=self.env, cwd=self.root, capture_output=True, text=True,
                               timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Failure(f"{what}: GIMP did not finish within {timeout} s")
        log(f"[{what}: GIMP ran {time.time() - t0:.1f} s, exit {p.returncode}]")
        return p.stdout + p.stderr


def results(output):
    """DITTEST lines the Script-Fu printed: {case: {key: value}}."""
    out = {}
    for m in re.finditer(r"DITTEST (\S+) (.*)", output):
        case, rest = m.group(1), m.group(2).strip()
        kv = out.setdefault(case, {})
        for item in re.finditer(r'(\w+)=("[^"]*"|\S+)', rest):
            kv[item.group(1)] = item.group(2).strip('"')
    return out


def check(cond, msg):
    if not cond:
        raise Failure(msg)
    log(f"ok: {msg}")


def run_check(args, *argv):
    p = subprocess.run([args.check, *argv], capture_output=True, text=True)
    log(p.stdout.strip() or p.stderr.strip())
    return p.returncode


# ---- Script-Fu ------------------------------------------------------------------

PRELUDE = r'''
(define (say . parts) (gimp-message (apply string-append "DITTEST " parts)))
(define (num n) (number->string n))
(define (save img drawable path)
  (file-png-save2 RUN-NONINTERACTIVE img drawable path path 0 9 0 0 0 0 0 0 1))
(define (load path)
  (car (file-png-load RUN-NONINTERACTIVE path path)))
(define (layer-count img) (car (gimp-image-get-layers img)))
; the selection as an image-sized gray PNG (selected = white)
(define (save-selection img path)
  (let* ((chan (car (gimp-selection-save img))))
    (gimp-selection-none img)
    (gimp-edit-copy chan)
    (let* ((m (car (gimp-edit-paste-as-new-image))))
      (save m (car (gimp-image-get-active-drawable m)) path)
      (gimp-image-delete m))
    (gimp-image-select-item img CHANNEL-OP-REPLACE chan)
    (gimp-image-remove-channel img chan)))
(define (report case img old new)
  (let* ((off (gimp-drawable-offsets new)))
    (say case " layers=" (num (layer-count img))
         " name=\"" (car (gimp-item-get-name new)) "\""
         " active=" (if (= (car (gimp-image-get-active-layer img)) new) "yes" "no")
         " above=" (if (< (car (gimp-image-get-item-position img new))
                          (car (gimp-image-get-item-position img old))) "yes" "no")
         " width=" (num (car (gimp-drawable-width new)))
         " height=" (num (car (gimp-drawable-height new)))
         " offx=" (num (car off)) " offy=" (num (cadr off)))))
'''


def case_script(name, body):
    """One case; a Scheme error is reported instead of ending the batch."""
    return (f'(catch (say "{name} error=script-fu-error") '
            f'(begin {body}) (say "{name} done=yes"))')


def batch_script(photos, model, out):
    p = lambda f: os.path.join(photos, f)
    o = lambda f: os.path.join(out, f)
    cases = []
    # 1. rectangle, class by name
    cases.append(("rect", f'''
      (let* ((img (load "{p('chelsea.png')}")) (layer (car (gimp-image-get-active-layer img))))
        (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 120 60 150 120)
        (let* ((new (car (plug-in-dit-inpaint RUN-NONINTERACTIVE img layer "{model}" "dress"
                          4 1.0 4.0 7 "" 0 "cpu"))))
          (report "rect" img layer new)
          (save img layer "{o('rect-orig.png')}")
          (save img new "{o('rect-new.png')}")
          (save-selection img "{o('rect-mask.png')}")
          (gimp-image-delete img)))'''))
    # 2. feathered selection, class by number, another sampler, grow
    cases.append(("feather", f'''
      (let* ((img (load "{p('coffee.png')}")) (layer (car (gimp-image-get-active-layer img))))
        (gimp-image-select-ellipse img CHANNEL-OP-REPLACE 150 80 300 240)
        (gimp-selection-feather img 50)
        (let* ((new (car (plug-in-dit-inpaint RUN-NONINTERACTIVE img layer "{model}" "3"
                          4 1.0 3.0 8 "ddim" 1 "auto"))))
          (report "feather" img layer new)
          (save img layer "{o('feather-orig.png')}")
          (save img new "{o('feather-new.png')}")
          (save-selection img "{o('feather-mask.png')}")
          (gimp-image-delete img)))'''))
    # 3. 16 bits per channel
    cases.append(("u16", f'''
      (let* ((img (load "{p('chelsea.png')}")) (layer 0))
        (gimp-image-convert-precision img PRECISION-U16-GAMMA)
        (set! layer (car (gimp-image-get-active-layer img)))
        (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 40 40 100 100)
        (let* ((new (car (plug-in-dit-inpaint RUN-NONINTERACTIVE img layer "{model}" "Sneaker"
                          4 1.0 4.0 9 "" 0 "auto"))))
          (report "u16" img layer new)
          (save img layer "{o('u16-orig.png')}")
          (save img new "{o('u16-new.png')}")
          (save-selection img "{o('u16-mask.png')}")
          (gimp-image-delete img)))'''))
    # 3b. 32-bit float, linear light
    cases.append(("f32", f'''
      (let* ((img (load "{p('chelsea.png')}")) (layer 0))
        (gimp-image-convert-precision img PRECISION-FLOAT-LINEAR)
        (set! layer (car (gimp-image-get-active-layer img)))
        (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 200 120 100 80)
        (let* ((new (car (plug-in-dit-inpaint RUN-NONINTERACTIVE img layer "{model}" "Shirt"
                          4 1.0 4.0 15 "" 0 "auto"))))
          (report "f32" img layer new)
          (save img layer "{o('f32-orig.png')}")
          (save img new "{o('f32-new.png')}")
          (save-selection img "{o('f32-mask.png')}")
          (gimp-image-delete img)))'''))
    # 4. grayscale
    cases.append(("gray", f'''
      (let* ((img (load "{p('astronaut.png')}")) (layer 0))
        (gimp-image-scale img 256 256)
        (gimp-image-convert-grayscale img)
        (set! layer (car (gimp-image-get-active-layer img)))
        (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 80 60 90 70)
        (let* ((new (car (plug-in-dit-inpaint RUN-NONINTERACTIVE img layer "{model}" "Bag"
                          4 1.0 4.0 10 "" 0 "auto"))))
          (report "gray" img layer new)
          (save img layer "{o('gray-orig.png')}")
          (save img new "{o('gray-new.png')}")
          (save-selection img "{o('gray-mask.png')}")
          (gimp-image-delete img)))'''))
    # 5. a layer with offsets and a transparent strip under the selection
    cases.append(("offset", f'''
      (let* ((img (load "{p('chelsea.png')}")) (layer (car (gimp-image-get-active-layer img))))
        (gimp-layer-add-alpha layer)
        (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 0 0 100 300)
        (gimp-drawable-edit-clear layer)
        (gimp-image-resize img 491 340 20 30)
        (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 60 50 200 150)
        (let* ((new (car (plug-in-dit-inpaint RUN-NONINTERACTIVE img layer "{model}" "Coat"
                          4 1.0 4.0 11 "" 0 "auto"))))
          (report "offset" img layer new)
          (save img layer "{o('offset-orig.png')}")
          (save img new "{o('offset-new.png')}")
          (save-selection img "{o('offset-mask.png')}")
          (gimp-image-delete img)))'''))
    # 6. img2img on the whole layer with the default model ("")
    cases.append(("img2img", f'''
      (let* ((img (load "{p('coffee.png')}")) (layer (car (gimp-image-get-active-layer img))))
        (gimp-selection-none img)
        (let* ((new (car (plug-in-dit-img2img RUN-NONINTERACTIVE img layer "" "Trouser"
                          4 0.6 4.0 12 "" 0 "auto"))))
          (report "img2img" img layer new)
          (save img layer "{o('img2img-orig.png')}")
          (save img new "{o('img2img-new.png')}")
          (gimp-image-delete img)))'''))
    # 7. img2img limited to a selection
    cases.append(("img2imgsel", f'''
      (let* ((img (load "{p('chelsea.png')}")) (layer (car (gimp-image-get-active-layer img))))
        (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 200 100 120 100)
        (let* ((new (car (plug-in-dit-img2img RUN-NONINTERACTIVE img layer "{model}" "0"
                          4 0.8 4.0 13 "euler" 0 "auto"))))
          (report "img2imgsel" img layer new)
          (save img layer "{o('img2imgsel-orig.png')}")
          (save img new "{o('img2imgsel-new.png')}")
          (save-selection img "{o('img2imgsel-mask.png')}")
          (gimp-image-delete img)))'''))
    # 8. generate a layer of the image's size
    cases.append(("generate", f'''
      (let* ((img (load "{p('coffee.png')}")) (layer (car (gimp-image-get-active-layer img))))
        (let* ((new (car (plug-in-dit-generate RUN-NONINTERACTIVE img layer "{model}" "Sandal"
                          4 4.0 14 "" "auto"))))
          (report "generate" img layer new)
          (save img new "{o('generate-new.png')}")
          (gimp-image-delete img)))'''))
    return cases


def run_batch(args, root):
    photos = photos_dir(args.srcdir)
    model = make_model(args.srcdir, root)
    out = os.path.join(args.outdir, "batch")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    prof = Profile(args, root)
    prof.env["DIT_DEFAULT_MODEL"] = model  # "" in the img2img case
    cases = batch_script(photos, model, out)
    script = PRELUDE + "\n".join(case_script(n, b) for n, b in cases)
    output = prof.gimp([script, "(gimp-quit 0)"], what="batch")
    r = results(output)
    failed = []

    def verdict(name, fn):
        log(f"--- {name}")
        try:
            res = r.get(name, {})
            if "error" in res or "layers" not in res:
                raise Failure(f"{name}: the plug-in call failed")
            fn(res)
        except Failure as e:
            log(f"FAIL: {e}")
            failed.append(name)

    o = lambda f: os.path.join(out, f)

    def edit_case(name, cls, seed, extra=(), depth=8, channels=3, size=None, off=(0, 0)):
        def fn(res):
            check(res["layers"] == "2", f"{name}: the image has 2 layers")
            check(res["name"] == f"DiT {cls} seed {seed}", f"{name}: new layer named '{res['name']}'")
            check(res["active"] == "yes" and res["above"] == "yes",
                  f"{name}: the new layer is active and above the source")
            check((int(res["offx"]), int(res["offy"])) == off,
                  f"{name}: offsets {res['offx']},{res['offy']} are the source layer's")
            info = subprocess.run([args.check, "info", o(f"{name}-new.png")], capture_output=True,
                                  text=True).stdout.split()
            check(len(info) == 4 and int(info[2]) == depth and int(info[3]) == channels,
                  f"{name}: new layer exported as {depth}-bit, {channels} channels ({info})")
            if size:
                check((int(info[0]), int(info[1])) == size, f"{name}: new layer is {size}")
            if os.path.exists(o(f"{name}-mask.png")):
                rc = run_check(args, "compare", o(f"{name}-orig.png"), o(f"{name}-new.png"),
                               o(f"{name}-mask.png"), *extra)
            else:
                rc = run_check(args, "changed", o(f"{name}-orig.png"), o(f"{name}-new.png"), *extra)
            check(rc == 0, f"{name}: outside the selection bit-identical, inside changed")
        verdict(name, fn)

    edit_case("rect", "Dress", 7, size=(451, 300))
    edit_case("feather", "Dress", 8, size=(600, 400))
    edit_case("u16", "Sneaker", 9, depth=16)
    edit_case("f32", "Shirt", 15, depth=16)
    edit_case("gray", "Bag", 10, channels=1, size=(256, 256))
    edit_case("offset", "Coat", 11, extra=("--offset", "20,30", "--alpha", "--min-changed", "0.8"),
              channels=4, off=(20, 30))
    edit_case("img2img", "Trouser", 12, extra=("--min-changed", "0.9"))
    edit_case("img2imgsel", "T-shirt/top", 13)

    def generate(res):
        check(res["layers"] == "2", "generate: the image has 2 layers")
        check(res["name"] == "DiT Sandal seed 14", f"generate: new layer named '{res['name']}'")
        check((res["width"], res["height"]) == ("600", "400"), "generate: layer of the image's size")
        check(run_check(args, "nonblank", o("generate-new.png")) == 0, "generate: not blank")
    verdict("generate", generate)

    bad = re.findall(r".*(?:CRITICAL|segmentation|wire_read|plug-in crashed).*", output, re.I)
    if bad:
        log("FAIL: GIMP reported:\n" + "\n".join(bad))
        failed.append("stderr")
    if failed:
        log(output)
        raise Failure("failed: " + ", ".join(failed))


# ---- errors ------------------------------------------------------------------------

ERRORS = [
    # case, Script-Fu setup, call, expected message
    ("empty", "(gimp-selection-none img)",
     'plug-in-dit-inpaint RUN-NONINTERACTIVE img layer "{model}" "1" 4 1.0 4.0 1 "" 0 "auto"',
     "Inpainting needs a selection: select the region to regenerate first"),
    ("indexed",
     '(gimp-image-convert-indexed img CONVERT-DITHER-NONE CONVERT-PALETTE-GENERATE 16 FALSE FALSE "")'
     ' (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 10 10 50 50)',
     'plug-in-dit-inpaint RUN-NONINTERACTIVE img layer "{model}" "1" 4 1.0 4.0 1 "" 0 "auto"',
     "DiT does not work on indexed images: convert the image to RGB or grayscale first"),
    ("offlayer",
     "(gimp-image-resize img 651 300 200 0)"
     " (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 10 10 100 100)",
     'plug-in-dit-inpaint RUN-NONINTERACTIVE img layer "{model}" "1" 4 1.0 4.0 1 "" 0 "auto"',
     "The selection does not overlap the active layer"),
    ("group",
     "(let* ((grp (car (gimp-layer-group-new img)))) (gimp-image-insert-layer img grp 0 0)"
     " (gimp-image-reorder-item img layer grp 0) (set! layer grp))"
     " (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 10 10 50 50)",
     'plug-in-dit-inpaint RUN-NONINTERACTIVE img layer "{model}" "1" 4 1.0 4.0 1 "" 0 "auto"',
     "DiT cannot work on a layer group: select one of its layers"),
    ("class", "(gimp-image-select-rectangle img CHANNEL-OP-REPLACE 10 10 50 50)",
     'plug-in-dit-inpaint RUN-NONINTERACTIVE img layer "{model}" "Unicorn" 4 1.0 4.0 1 "" 0 "auto"',
     "Unknown class 'Unicorn': it is not one of this model's labels"),
    ("cuda", "(gimp-image-select-rectangle img CHANNEL-OP-REPLACE 10 10 50 50)",
     'plug-in-dit-img2img RUN-NONINTERACTIVE img layer "{model}" "1" 4 0.5 4.0 1 "" 0 "cuda"',
     "no CUDA backend"),
    ("model", "(gimp-image-select-rectangle img CHANNEL-OP-REPLACE 10 10 50 50)",
     'plug-in-dit-inpaint RUN-NONINTERACTIVE img layer "/nonexistent/model" "1" 4 1.0 4.0 1 "" 0 "auto"',
     "Could not load the model"),
]


def error_script(photos, model, cases):
    scripts = []
    for name, setup, call, _ in cases:
        call = call.format(model=model)
        scripts.append(f'''
          (let* ((img (load "{os.path.join(photos, 'chelsea.png')}"))
                 (layer (car (gimp-image-get-active-layer img))))
            {setup}
            (say "{name} result=" (catch "refused" ({call}) "accepted")
                 " layers=" (num (layer-count img)))
            (gimp-image-delete img))''')
    return PRELUDE + "\n".join(scripts)


def run_errors(args, root):
    photos = photos_dir(args.srcdir)
    model = make_model(args.srcdir, root)
    prof = Profile(args, root)
    output = prof.gimp([error_script(photos, model, ERRORS), "(gimp-quit 0)"], what="errors")
    r = results(output)
    failed = []
    for name, _, _, message in ERRORS:
        res = r.get(name, {})
        ok = res.get("result") == "refused" and res.get("layers") == "1" and message in output
        log(f"{'ok' if ok else 'FAIL'}: {name}: refused={res.get('result')}, "
            f"layers={res.get('layers')}, message {'found' if message in output else 'MISSING'}: "
            f"{message}")
        if not ok:
            failed.append(name)
    if failed:
        log(output)
        raise Failure("failed: " + ", ".join(failed))


# ---- undo (GIMP with its UI under Xvfb) ----------------------------------------------


def script_fu_call(port, command, timeout=60):
    """One command to GIMP's Script-Fu server; returns (ok, text)."""
    data = command.encode()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"G" + len(data).to_bytes(2, "big") + data)
        head = b""
        while len(head) < 4:
            chunk = s.recv(4 - len(head))
            if not chunk:
                raise Failure("the Script-Fu server closed the connection")
            head += chunk
        n = int.from_bytes(head[2:4], "big")
        body = b""
        while len(body) < n:
            chunk = s.recv(n - len(body))
            if not chunk:
                break
            body += chunk
    return head[1] == 0, body.decode(errors="replace")


def run_ui(args, root):
    photos = photos_dir(args.srcdir)
    for tool in ("Xvfb", "xdotool", "gimp-2.10"):
        if not shutil.which(tool):
            log(f"SKIP: {tool} is not installed")
            sys.exit(SKIP)
    model = make_model(args.srcdir, root)
    prof = Profile(args, root)
    # Xvfb picks a free display and tells us its number
    rfd, wfd = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(wfd), "-screen", "0", "1280x1024x24",
                             "-nolisten", "tcp"], pass_fds=(wfd,),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(wfd)
    with os.fdopen(rfd) as f:
        number = f.readline().strip()
    if not number.isdigit():
        xvfb.kill()
        raise Failure("Xvfb did not start")
    display = f":{number}"
    # the dialog starts on the default model ("")
    env = dict(prof.env, DISPLAY=display, DIT_DEFAULT_MODEL=model)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gimp = None
    xd = lambda *a: subprocess.run(["xdotool", *a], env=env, capture_output=True, text=True)
    try:
        gimp = subprocess.Popen(
            ["gimp-2.10", "--no-splash", "--no-fonts", "-b",
             f'(plug-in-script-fu-server RUN-NONINTERACTIVE "127.0.0.1" {port} "")'],
            env=env, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 90
        while True:
            try:
                script_fu_call(port, "(gimp-message-set-handler CONSOLE)", timeout=10)
                break
            except OSError:
                if time.time() > deadline or gimp.poll() is not None:
                    raise Failure("GIMP's Script-Fu server did not come up")
                time.sleep(0.5)
        call = lambda cmd, timeout=60: script_fu_call(port, cmd, timeout)[1]
        photo = os.path.join(photos, "chelsea.png")
        img = call(f'(car (file-png-load RUN-NONINTERACTIVE "{photo}" "{photo}"))')
        disp = call(f"(car (gimp-display-new {img}))")
        layer = call(f"(car (gimp-image-get-active-layer {img}))")
        layers = lambda: call(f"(car (gimp-image-get-layers {img}))")
        call(f"(gimp-image-select-rectangle {img} CHANNEL-OP-REPLACE 100 80 120 90)")
        check(layers() == "1", f"image {img} on display {disp} with one layer and a selection")

        # 1. interactive: our GTK3 dialog opens in the plug-in; Alt+O is its OK
        result = {}

        def interactive():
            try:
                result["ok"], result["text"] = script_fu_call(
                    port, f"(plug-in-dit-inpaint RUN-INTERACTIVE {img} {layer} "
                          f'"" "" 4 1.0 4.0 -1 "" 0 "auto")', timeout=150)
            except (OSError, Failure) as e:
                result["ok"], result["text"] = False, str(e)
        th = threading.Thread(target=interactive)
        th.start()
        wid = ""
        for _ in range(120):
            wid = xd("search", "--onlyvisible", "--name", "^DiT Inpaint$").stdout.split()
            if wid:
                break
            time.sleep(0.5)
        check(bool(wid), "the plug-in's GTK3 dialog 'DiT Inpaint' is on screen")
        time.sleep(1.0)
        if shutil.which("import"):  # ImageMagick, when present: the dialog inside GIMP
            subprocess.run(["import", "-window", "root",
                            os.path.join(args.outdir, "dit-dialog-in-gimp.png")],
                           env=env, capture_output=True, timeout=30)
        xd("windowfocus", "--sync", wid[0])
        xd("key", "--clearmodifiers", "alt+o")
        th.join(150)
        check(not th.is_alive() and result.get("ok"),
              f"OK in the dialog ran the plug-in ({result.get('text', 'still running')})")
        check(layers() == "2", "the interactive run added a layer")
        name = call(f"(car (gimp-item-get-name (car (gimp-image-get-active-layer {img}))))")
        check(re.fullmatch(r'"DiT T-shirt/top seed \d+"', name) is not None,
              f"named after the default class and a random seed: {name}")

        # 2. one Ctrl+Z in the image window: GIMP's own undo
        call("(gimp-displays-flush)")
        xid = call(f"(car (gimp-display-get-window-handle {disp}))")
        xd("windowfocus", "--sync", xid)
        time.sleep(0.5)
        xd("key", "--clearmodifiers", "ctrl+z")
        n = None
        for _ in range(40):
            time.sleep(0.25)
            n = layers()
            if n == "1":
                break
        check(n == "1", f"after one Ctrl+Z the image has {n} layer(s): the new layer is gone")
        check(call(f"(car (gimp-item-is-valid {layer}))") == "1", "the source layer is still there")
        # the step before the plug-in (the selection) is not undone: one undo = one run
        check(call(f"(car (gimp-selection-is-empty {img}))") == "0",
              "the selection made before the plug-in is still there")
        xd("key", "--clearmodifiers", "ctrl+y")
        for _ in range(40):
            time.sleep(0.25)
            n = layers()
            if n == "2":
                break
        check(n == "2", f"Ctrl+Y (redo) brings the layer back: {n} layers")

        # 3. Filters > Repeat: the last values, no dialog
        ok, text = script_fu_call(port, f"(plug-in-dit-inpaint RUN-WITH-LAST-VALS {img} {layer} "
                                        f'"" "" 0 0 0 0 "" 0 "")', timeout=120)
        check(ok and layers() == "3", f"a run with the last values adds a layer ({text})")
        try:  # GIMP closes the connection as it quits
            script_fu_call(port, "(gimp-quit 1)", timeout=10)
        except (OSError, Failure):
            pass
    except (OSError, Failure) as e:
        if gimp and gimp.poll() is None:
            gimp.kill()
        out = gimp.communicate(timeout=20)[0] if gimp else ""
        log(out)
        raise Failure(str(e))
    finally:
        if gimp and gimp.poll() is None:
            try:
                gimp.wait(timeout=15)
            except subprocess.TimeoutExpired:
                gimp.kill()
        xvfb.terminate()
        xvfb.wait()


# ---- dialog and i18n -----------------------------------------------------------------


def run_dialog(args, root):
    if not shutil.which("xvfb-run"):
        log("SKIP: xvfb-run is not installed")
        sys.exit(SKIP)
    photos = photos_dir(args.srcdir)
    model = make_model(args.srcdir, root)
    shot = os.path.join(args.outdir, "dit-dialog.png")
    if os.path.exists(shot):
        os.remove(shot)
    env = dict(os.environ, LANG="C.UTF-8", HOME=root)
    env.pop("LANGUAGE", None)
    p = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24", args.dialog_shot,
                        "--png", shot, "--photo", os.path.join(photos, "chelsea.png"),
                        "--labels", os.path.join(model, "labels.txt"), "--default-model", model],
                       env=env, capture_output=True, text=True, timeout=120)
    log(p.stdout + p.stderr)
    check(p.returncode == 0, "the dialog opened under Xvfb and was rendered")
    check(run_check(args, "nonblank", shot, "--min-size", "500x300") == 0,
          f"{shot} is a valid, non-blank PNG")


# msgid -> what each language must show (GtkLabel drops the mnemonic '_')
ZH_EXPECT = ["DiT 局部重绘", "步数", "强度", "引导强度", "种子", "采样器", "预览", "随机"]
TITLES = {"de": "DiT Inpainting", "fr": "DiT Retouche"}


def dialog_texts(args, lang):
    env = dict(os.environ, LANG="C.UTF-8", LANGUAGE=lang)
    env.pop("LC_ALL", None)
    env.pop("LC_MESSAGES", None)
    p = subprocess.run(["xvfb-run", "-a", args.dialog_shot, "--texts"], env=env,
                       capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise Failure(f"dialog-shot --texts failed: {p.stderr}")
    return p.stdout


def run_i18n(args, root):
    if not shutil.which("xvfb-run"):
        log("SKIP: xvfb-run is not installed")
        sys.exit(SKIP)
    en = dialog_texts(args, "C")
    zh = dialog_texts(args, "zh_CN")
    log("zh_CN dialog texts:\n" + zh)
    for word in ZH_EXPECT:
        check(word in zh, f"zh_CN dialog shows '{word}'")
    en_lines = set(en.splitlines())
    zh_lines = zh.splitlines()
    same = [l for l in zh_lines if l in en_lines and re.search(r"[a-z]{3}", l)
            and l not in ("DiT", "CPU", "dpm++2m")]
    check(not same, f"every English dialog text is translated (untranslated: {same})")
    for lang, title in TITLES.items():
        texts = dialog_texts(args, lang)
        check(texts.splitlines()[0].startswith(title), f"{lang} dialog title: {texts.splitlines()[0]}")
    # every string of the catalogue, menu labels included, in the compiled .mo
    pot = open(os.path.join(args.srcdir, "po", "gimp-dit.pot"), encoding="utf-8").read()
    n_msgids = len(re.findall(r"^msgid ", pot, re.M)) - 1  # minus the header
    localedir = os.environ.get("DIT_LOCALEDIR", "")
    for lang in ("zh_CN", "de", "fr"):
        mo = os.path.join(localedir, lang, "LC_MESSAGES", "gimp-dit.mo")
        if not shutil.which("msgunfmt") or not os.path.exists(mo):
            raise Failure(f"no msgunfmt or no {mo}")
        text = subprocess.run(["msgunfmt", mo], capture_output=True, text=True).stdout
        n = len(re.findall(r"^msgid ", text, re.M)) - 1
        check(n == n_msgids, f"{lang}: {n} of {n_msgids} strings translated in {mo}")
    zh_mo = os.path.join(localedir, "zh_CN", "LC_MESSAGES", "gimp-dit.mo")
    text = subprocess.run(["msgunfmt", zh_mo], capture_output=True, text=True).stdout
    for en, zh in (("DiT _Inpaint...", "DiT 局部重绘(_I)..."), ("DiT _Image to Image...", "DiT 图生图(_I)..."),
                   ("DiT _Generate...", "DiT 生成(_G)...")):
        check(f'msgid "{en}"\nmsgstr "{zh}"' in text, f"zh_CN menu label {en} -> {zh}")
    # the plug-in's own message in real GIMP
    photos = photos_dir(args.srcdir)
    model = make_model(args.srcdir, root)
    prof = Profile(args, root, lang="zh_CN")
    output = prof.gimp([error_script(photos, model, ERRORS[:1]), "(gimp-quit 0)"], what="zh_CN")
    check("局部重绘需要选区" in output, "the plug-in's error message is in Chinese in GIMP")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=["batch", "errors", "ui", "dialog", "i18n"])
    ap.add_argument("--plugin", required=True)
    ap.add_argument("--check", required=True)
    ap.add_argument("--dialog-shot", required=True)
    ap.add_argument("--srcdir", required=True)
    ap.add_argument("--outdir", required=True)
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix=f"dit-gimp-{args.case}-")
    t0 = time.time()
    try:
        {"batch": run_batch, "errors": run_errors, "ui": run_ui, "dialog": run_dialog,
         "i18n": run_i18n}[args.case](args, root)
    except Failure as e:
        log(f"FAIL: {e}")
        return 1
    finally:
        shutil.rmtree(root, ignore_errors=True)
        log(f"[{args.case}: {time.time() - t0:.1f} s]")
    log("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
