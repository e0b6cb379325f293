#!/usr/bin/env python3
"""The gimp suite: the plug-ins in real GIMP 2.10 and GIMP 3, and the GTK3 dialog.

    test-gimp.py CASE --check PNG-CHECK --dialog-shot EXE --srcdir SRC --outdir DIR
                 [--plugin DIT-GIMP] [--plugin3 DIT-GIMP3 --gimp3-prefix DIR
                  --gimp3-libdir DIR --pdb-check3 EXE --locale3 DIR]

CASE is one of (a "-gimp3" suffix runs the same case against GIMP 3 and
dit-gimp3, Script-Fu with named arguments):
  batch   inpaint (rectangle, feathered, 16-bit, 32-bit float linear, gray,
          layer offsets + alpha; feathered in differential mode, the change
          growing with the selection's value (GIMP 2.10: the -full twin)),
          outpaint (the canvas grows, the layer's pixels bit-identical at
          their new place, the border filled), detail (worked at 200 px), three variations (a layer
          group, one layer per seed, each keeping the source outside the
          selection),
          img2img (whole layer with the default model, selection), generate:
          a new layer exists with the right name, size and offsets, pixels
          outside the selection are bit-identical to the source layer, pixels
          inside changed, the source alpha is kept
  errors  empty selection, indexed image, selection off the layer, layer
          group, unknown class, CUDA device, missing model (GIMP 3: and two
          selected layers): each gives its documented message on GIMP's
          stderr and adds no layer
  ui      GIMP with its UI under Xvfb: an interactive run opens the GTK3
          dialog inside the plug-in (screenshot OUTDIR/dit-dialog-gimp2.png or
          -gimp3.png, checked non-blank), class and seed are typed in, OK
          (Alt+O, sent with xdotool) runs it and the dialog stays, naming the
          kept layer; Run again (Alt+H) keeps another with a new seed, Close
          (Alt+C) ends; one Ctrl+Z removes the last new layer and nothing
          else, Ctrl+Y brings it back; a run with the last values adds another
          layer with the last run's class and seed; two variations add
          one layer group, which one Ctrl+Z removes
  pdb     GIMP 3's PDB (through the pdb-check3 test plug-in): the four
          procedures under <Image>/Filters/Generic/DiT with the documented
          arguments, types, ranges and defaults; GIMP 2.10's (when dit-gimp
          is built): the first three with their first-wave arguments, their
          -full twins and outpaint with all of GIMP 3's; several drawables
          are a calling error, no selection an execution error
  dialog  the dialog under Xvfb, screenshot saved as OUTDIR/dit-dialog.png
          and checked to be a real, non-blank PNG
  classes one class rule everywhere: for each class string (empty, ids, the
          null class, out of range, names in any case, unknown) on the test
          model and on an unconditional model (trained for one step by
          `dit train --unconditional`), `dit generate --class` and
          plug-in-dit-generate both refuse, or both accept and name the
          same class (the CLI's "class:" line, the new layer's name)
  first-run  the README's first command as written (its GIMP run, paths
          redirected): the embedded model inpaints the example garment, and
          the result's nearest Fashion-MNIST training image has the asked class
  i18n    LANGUAGE=zh_CN: the dialog's texts and the plug-in's error message
          come out in Chinese (de and fr titles too); -gimp3: the catalogue
          installed beside dit-gimp3 gives the Chinese message and menu label

Every GIMP run has its own temporary profile ($HOME) with the plug-in copied
into it, as `meson install` would (GIMP 2.10's profile is initialised by a
first `(gimp-quit 0)` run). GIMP 2.10 runs without LD_LIBRARY_PATH and
GI_TYPELIB_PATH; GIMP 3 with its own prefix's. GIMP's batch exit code is
always 0, so the verdicts come from the files the Script-Fu writes and from
GIMP's stderr. The test model is assembled from the golden fixtures:
transformer/ = tests/golden/dit_diffusers_p2 (10 classes, 8x8 latent), vae/ =
tests/golden/vae_kl (factor 2), labels.txt = data/labels/fashion-mnist.txt;
native size 16x16 pixels. Exit 77 (skip) when ../shared/data/photos, the
GIMP version, its plug-in or Xvfb is missing.
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
PHOTOS = ("chelsea.png", "coffee.png", "astronaut.png")
MENU_PATH = "<Image>/Filters/Generic/DiT"
PROCS = ("plug-in-dit-inpaint", "plug-in-dit-img2img", "plug-in-dit-generate",
         "plug-in-dit-outpaint")


class Failure(Exception):
    pass


def log(*a):
    print(*a, flush=True)


def skip(why):
    log(f"SKIP: {why}")
    sys.exit(SKIP)


# ---- the two GIMPs ---------------------------------------------------------------

# the plug-ins' own arguments, in PDB order (after run-mode, image, drawable(s))
EDIT_ARGS = ("model", "class", "steps", "strength", "guidance", "guidance-from", "guidance-to",
             "seed", "sampler", "grow", "device",
             "mask-mode", "expand", "feather", "colour-match", "resample-jump",
             "resample-count", "variations", "detail")
GENERATE_ARGS = ("model", "class", "steps", "guidance", "guidance-from", "guidance-to", "seed",
                 "sampler", "device", "variations", "detail")
# GIMP 3 only, last: a text model's; GIMP 2.10 takes the prompt as `class`
PROMPT_ARGS = ("prompt", "negative-prompt")
PROC_ARGS = {"plug-in-dit-inpaint": EDIT_ARGS + PROMPT_ARGS,
             "plug-in-dit-img2img": EDIT_ARGS + PROMPT_ARGS,
             "plug-in-dit-generate": GENERATE_ARGS + PROMPT_ARGS,
             "plug-in-dit-outpaint": EDIT_ARGS + ("top", "left", "bottom", "right") + PROMPT_ARGS}
# added after the first procedures, with their defaults: 2.10's Script-Fu
# takes every argument in order, so its first procedures keep the list
# existing calls were written for and their "-full" twins take these too
LATER = {"guidance-from": 0.0, "guidance-to": 1.0, "mask-mode": "differential", "expand": 0, "feather": -1, "colour-match": 0, "resample-jump": 0,
         "resample-count": 1, "variations": 1, "detail": 0,
         "top": 64, "left": 64, "bottom": 64, "right": 64}
FULL = "-full"


def scheme(value):
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


class Gimp:
    """One GIMP version: its binaries, plug-in, environment and Script-Fu."""

    def __init__(self, major, args):
        self.major = major
        self.args = args
        if major == 2:
            self.label, self.folder, self.binary = "GIMP 2.10", "2.10", "dit-gimp"
            self.plugin = args.plugin
            self.console = shutil.which("gimp-console-2.10")
            self.gui = shutil.which("gimp-2.10")
            self.prelude = PRELUDE2
            self.u16 = "PRECISION-U16-GAMMA"
        else:
            self.label, self.folder, self.binary = "GIMP 3", "3.0", "dit-gimp3"
            self.plugin = args.plugin3
            self.console = self.find3("gimp-console-3.0")
            self.gui = self.find3("gimp-3.0")
            self.prelude = PRELUDE3
            self.u16 = "PRECISION-U16-NON-LINEAR"

    def find3(self, name):
        if self.args.gimp3_prefix:
            path = os.path.join(self.args.gimp3_prefix, "bin", name)
            if os.access(path, os.X_OK):
                return path
        return shutil.which(name)

    def require(self, gui=False):
        if not self.plugin:
            skip(f"the {self.label} plug-in was not built (pkg-config found no "
                 f"gimp-{'2.0' if self.major == 2 else '3.0'})")
        if not (self.gui if gui else self.console):
            skip(f"{self.label} is not installed")

    def environ(self, env):
        """GIMP 2.10 with the system's libraries; GIMP 3 with its prefix's."""
        for k in ("LD_LIBRARY_PATH", "GI_TYPELIB_PATH", "GIMP2_DIRECTORY", "GIMP3_DIRECTORY"):
            env.pop(k, None)
        if self.major == 3 and self.args.gimp3_libdir:
            env["LD_LIBRARY_PATH"] = self.args.gimp3_libdir
            env["GI_TYPELIB_PATH"] = os.path.join(self.args.gimp3_libdir, "girepository-1.0")
        return env

    def batch(self, commands):
        if self.major == 2:
            cmd = [self.console, "-i", "--no-fonts"]
            commands = list(commands) + ["(gimp-quit 0)"]
        else:  # --quit: GIMP 3 would wait forever after a failing command. No
            # --no-fonts: GIMP 3.0.4 unrefs a missing font object as it quits
            cmd = [self.console, "-i", "--quit", "--batch-interpreter=plug-in-script-fu-eval"]
        for c in commands:
            cmd += ["-b", c]
        return cmd

    def call(self, proc, run_mode="RUN-NONINTERACTIVE", image="img", drawables="layer",
             vector=None, **kw):
        """A plug-in call: positional in 2.10, named arguments in 3 (class=
        is cls=; sampler "" is GIMP 3's "default"; vector: a Scheme
        expression for GIMP 3's drawables instead of (vector drawables))."""
        names = PROC_ARGS[proc]
        values = {("class" if k == "cls" else k.replace("_", "-")): v for k, v in kw.items()}
        if self.major == 2:  # a text model's prompt comes as the class
            if "prompt" in values:
                values["class"] = values.pop("prompt")
            if "negative-prompt" in values:
                raise Failure("GIMP 2.10's procedures take no negative prompt")
            names = [n for n in names if n not in PROMPT_ARGS]
        if self.major == 2:  # a later argument: the -full twin (outpaint has them all)
            full = proc.endswith("outpaint") or any(n in values for n in LATER)
            if full:
                values = {**LATER, **values}
                proc += "" if proc.endswith("outpaint") else FULL
            return (f"({proc} {run_mode} {image} {drawables} "
                    + " ".join(scheme(values[n]) for n in names if full or n not in LATER) + ")")
        if values.get("sampler") == "":
            values["sampler"] = "default"
        named = " ".join(f"#:{n} {scheme(values[n])}" for n in names if n in values)
        return (f"({proc} #:run-mode {run_mode} #:image {image} "
                f"#:drawables {vector or f'(vector {drawables})'} {named})")


def photos_dir(srcdir):
    d = os.path.normpath(os.path.join(srcdir, "..", "shared", "data", "photos"))
    if not all(os.path.isfile(os.path.join(d, p)) for p in PHOTOS):
        skip(f"the test photos are not in {d}")
    return d


def make_text_model(srcdir, root):
    """The tiny text model: a PixArt pipeline folder of links to the golden
    fixtures (native size 16x16 pixels, unit 4)."""
    golden = os.path.join(srcdir, "tests", "golden")
    model = os.path.join(root, "models", "pixart-tiny")
    os.makedirs(model)
    for link, target in (("transformer", "pixart_tiny/transformer"), ("text_encoder", "t5_tiny"),
                         ("tokenizer", "t5_tiny"), ("vae", "vae_kl")):
        os.symlink(os.path.join(golden, target), os.path.join(model, link))
    return model


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

    def __init__(self, g, args, root, lang=None, gui=False, pdb_check=False):
        g.require(gui)
        self.g = g
        self.root = root
        self.home = os.path.join(root, "home")
        os.makedirs(self.home, exist_ok=True)
        self.env = g.environ(dict(os.environ))
        for k in ("DISPLAY", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME",
                  "LANGUAGE", "LC_ALL", "LC_MESSAGES"):
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
        plugins = os.path.join(self.home, ".config", "GIMP", g.folder, "plug-ins")
        if g.major == 2:
            # GIMP 2.10 sets up a profile only where the folder does not exist yet
            self.gimp([], what="profile init")
        plugdir = os.path.join(plugins, g.binary)
        os.makedirs(plugdir, exist_ok=True)
        shutil.copy(g.plugin, os.path.join(plugdir, g.binary))
        if g.major == 3 and args.locale3:
            # as meson install: the catalogues beside the binary, where GIMP 3
            # binds the plug-in's domain (not $DIT_LOCALEDIR)
            shutil.copytree(args.locale3, os.path.join(plugdir, "locale"))
            self.env.pop("DIT_LOCALEDIR", None)
        if pdb_check:
            if not args.pdb_check3:
                skip("pdb-check3 was not built")
            d = os.path.join(plugins, "dit-pdb-check")
            os.makedirs(d, exist_ok=True)
            shutil.copy(args.pdb_check3, os.path.join(d, "dit-pdb-check"))

    def gimp(self, commands, what, timeout=150):
        t0 = time.time()
        try:
            p = subprocess.run(self.g.batch(commands), env=self.env, cwd=self.root,
                               capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Failure(f"{what}: {self.g.label} did not finish within {timeout} s")
        log(f"[{what}: {self.g.label} ran {time.time() - t0:.1f} s, exit {p.returncode}]")
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

# The same helpers in both dialects: open-png, active-layer, layer-count,
# save (a drawable as a PNG of its own size), save-selection, report.
PRELUDE2 = r'''
(define (say . parts) (gimp-message (apply string-append "DITTEST " parts)))
(define (num n) (number->string n))
(define (bool x) (if (or (eq? x #t) (and (number? x) (= x 1))) "1" "0"))
(define (save img drawable path)
  (file-png-save2 RUN-NONINTERACTIVE img drawable path path 0 9 0 0 0 0 0 0 1))
(define (open-png path)
  (car (file-png-load RUN-NONINTERACTIVE path path)))
(define (active-layer img) (car (gimp-image-get-active-layer img)))
(define (layer-count img) (car (gimp-image-get-layers img)))
(define (image-size img)
  (string-append (num (car (gimp-image-width img))) "x" (num (car (gimp-image-height img)))))
(define (children item) (cadr (gimp-item-get-children item)))
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
         " offx=" (num (car off)) " offy=" (num (cadr off))
         " alpha=" (bool (car (gimp-drawable-has-alpha new)))
         " srcalpha=" (bool (car (gimp-drawable-has-alpha old))))))
'''

PRELUDE3 = r'''
(define (say . parts) (gimp-message (apply string-append "DITTEST " parts)))
(define (num n) (number->string n))
(define (bool x) (if (or (eq? x #t) (and (number? x) (= x 1))) "1" "0"))
(define (export-png img path)
  (file-png-export #:run-mode RUN-NONINTERACTIVE #:image img #:file path
                   #:include-exif FALSE #:include-iptc FALSE #:include-xmp FALSE
                   #:include-thumbnail FALSE #:include-comment FALSE
                   #:save-transparent TRUE))
; GIMP 3 exports images: the drawable alone in an image of its size
(define (save img drawable path)
  (let* ((out (car (gimp-image-new-with-precision
                     (car (gimp-drawable-get-width drawable))
                     (car (gimp-drawable-get-height drawable))
                     (car (gimp-image-get-base-type img)) (car (gimp-image-get-precision img)))))
         (copy (car (gimp-layer-new-from-drawable drawable out))))
    (gimp-image-insert-layer out copy 0 0)
    (gimp-layer-set-offsets copy 0 0)
    (export-png out path)
    (gimp-image-delete out)))
(define (open-png path) (car (gimp-file-load RUN-NONINTERACTIVE path)))
(define (selected-layers img) (car (gimp-image-get-selected-layers img)))
(define (active-layer img) (vector-ref (selected-layers img) 0))
(define (layer-count img) (vector-length (car (gimp-image-get-layers img))))
(define (image-size img)
  (string-append (num (car (gimp-image-get-width img))) "x" (num (car (gimp-image-get-height img)))))
(define (children item) (car (gimp-item-get-children item)))
(define (save-selection img path)
  (let* ((chan (car (gimp-selection-save img))))
    (gimp-selection-none img)
    (gimp-edit-copy (vector chan))
    (let* ((m (car (gimp-edit-paste-as-new-image))))
      (export-png m path)
      (gimp-image-delete m))
    (gimp-image-select-item img CHANNEL-OP-REPLACE chan)
    (gimp-image-remove-channel img chan)))
(define (report case img old new)
  (let* ((off (gimp-drawable-get-offsets new)) (sel (selected-layers img)))
    (say case " layers=" (num (layer-count img))
         " name=\"" (car (gimp-item-get-name new)) "\""
         " active=" (if (and (= (vector-length sel) 1) (= (vector-ref sel 0) new)) "yes" "no")
         " above=" (if (< (car (gimp-image-get-item-position img new))
                          (car (gimp-image-get-item-position img old))) "yes" "no")
         " width=" (num (car (gimp-drawable-get-width new)))
         " height=" (num (car (gimp-drawable-get-height new)))
         " offx=" (num (car off)) " offy=" (num (cadr off))
         " alpha=" (bool (car (gimp-drawable-has-alpha new)))
         " srcalpha=" (bool (car (gimp-drawable-has-alpha old))))))
'''


# both dialects: the names of a group's children, ";"-separated
CHILD_NAMES = r'''
(define (child-names item)
  (let* ((v (children item)) (i 0) (s ""))
    (while (< i (vector-length v))
      (set! s (string-append s (car (gimp-item-get-name (vector-ref v i))) ";"))
      (set! i (+ i 1)))
    s))
'''
PRELUDE2 += CHILD_NAMES
PRELUDE3 += CHILD_NAMES


def case_script(name, body):
    """One case; a Scheme error is reported instead of ending the batch."""
    return (f'(catch (say "{name} error=script-fu-error") '
            f'(begin {body}) (say "{name} done=yes"))')


# a text model's prompt and the layer name it gives (one line, cut at a word)
PROMPT = "a red tulip in a glass vase on a wooden table,  morning light"
PROMPT_LABEL = "a red tulip in a glass vase on a wooden…"


def batch_script(g, photos, model, text, out):
    p = lambda f: os.path.join(photos, f)
    o = lambda f: os.path.join(out, f)
    inpaint = lambda **kw: g.call("plug-in-dit-inpaint", **kw)
    img2img = lambda **kw: g.call("plug-in-dit-img2img", **kw)
    saves = lambda name: f'''
          (save img layer "{o(name + '-orig.png')}")
          (save img new "{o(name + '-new.png')}")
          (save-selection img "{o(name + '-mask.png')}")'''
    cases = []
    # 1. rectangle, class by name
    cases.append(("rect", f'''
      (let* ((img (open-png "{p('chelsea.png')}")) (layer (active-layer img)))
        (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 120 60 150 120)
        (let* ((new (car {inpaint(model=model, cls="dress", steps=4, strength=1.0, guidance=4.0,
                                  seed=7, sampler="", grow=0, device="cpu")})))
          (report "rect" img layer new) {saves('rect')}
          (gimp-image-delete img)))'''))
    # 2. feathered selection, class by number, another sampler, grow
    cases.append(("feather", f'''
      (let* ((img (open-png "{p('coffee.png')}")) (layer (active-layer img)))
        (gimp-image-select-ellipse img CHANNEL-OP-REPLACE 150 80 300 240)
        (gimp-selection-feather img 50)
        (let* ((new (car {inpaint(model=model, cls="3", steps=4, strength=1.0, guidance=3.0,
                                  seed=8, sampler="ddim", grow=1, device="auto")})))
          (report "feather" img layer new) {saves('feather')}
          (gimp-image-delete img)))'''))
    # 3. 16 bits per channel
    cases.append(("u16", f'''
      (let* ((img (open-png "{p('chelsea.png')}")) (layer 0))
        (gimp-image-convert-precision img {g.u16})
        (set! layer (active-layer img))
        (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 40 40 100 100)
        (let* ((new (car {inpaint(model=model, cls="Sneaker", steps=4, strength=1.0,
                                  guidance=4.0, seed=9, sampler="", grow=0, device="auto")})))
          (report "u16" img layer new) {saves('u16')}
          (gimp-image-delete img)))'''))
    # 3b. 32-bit float, linear light
    cases.append(("f32", f'''
      (let* ((img (open-png "{p('chelsea.png')}")) (layer 0))
        (gimp-image-convert-precision img PRECISION-FLOAT-LINEAR)
        (set! layer (active-layer img))
        (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 200 120 100 80)
        (let* ((new (car {inpaint(model=model, cls="Shirt", steps=4, strength=1.0,
                                  guidance=4.0, seed=15, sampler="", grow=0, device="auto")})))
          (report "f32" img layer new) {saves('f32')}
          (gimp-image-delete img)))'''))
    # 4. grayscale
    cases.append(("gray", f'''
      (let* ((img (open-png "{p('astronaut.png')}")) (layer 0))
        (gimp-image-scale img 256 256)
        (gimp-image-convert-grayscale img)
        (set! layer (active-layer img))
        (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 80 60 90 70)
        (let* ((new (car {inpaint(model=model, cls="Bag", steps=4, strength=1.0, guidance=4.0,
                                  seed=10, sampler="", grow=0, device="auto")})))
          (report "gray" img layer new) {saves('gray')}
          (gimp-image-delete img)))'''))
    # 5. a layer with offsets and a transparent strip under the selection
    cases.append(("offset", f'''
      (let* ((img (open-png "{p('chelsea.png')}")) (layer (active-layer img)))
        (gimp-layer-add-alpha layer)
        (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 0 0 100 300)
        (gimp-drawable-edit-clear layer)
        (gimp-image-resize img 491 340 20 30)
        (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 60 50 200 150)
        (let* ((new (car {inpaint(model=model, cls="Coat", steps=4, strength=1.0, guidance=4.0,
                                  seed=11, sampler="", grow=0, device="auto")})))
          (report "offset" img layer new) {saves('offset')}
          (gimp-image-delete img)))'''))
    # 6. img2img on the whole layer with the default model ("")
    cases.append(("img2img", f'''
      (let* ((img (open-png "{p('coffee.png')}")) (layer (active-layer img)))
        (gimp-selection-none img)
        (let* ((new (car {img2img(model="", cls="Trouser", steps=4, strength=0.6, guidance=4.0,
                                  seed=12, sampler="", grow=0, device="auto")})))
          (report "img2img" img layer new)
          (save img layer "{o('img2img-orig.png')}")
          (save img new "{o('img2img-new.png')}")
          (gimp-image-delete img)))'''))
    # 7. img2img limited to a selection
    cases.append(("img2imgsel", f'''
      (let* ((img (open-png "{p('chelsea.png')}")) (layer (active-layer img)))
        (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 200 100 120 100)
        (let* ((new (car {img2img(model=model, cls="0", steps=4, strength=0.8, guidance=4.0,
                                  seed=13, sampler="euler", grow=0, device="auto")})))
          (report "img2imgsel" img layer new) {saves('img2imgsel')}
          (gimp-image-delete img)))'''))
    # 8. generate a layer of the image's size
    cases.append(("generate", f'''
      (let* ((img (open-png "{p('coffee.png')}")) (layer (active-layer img)))
        (let* ((new (car {g.call("plug-in-dit-generate", model=model, cls="Sandal", steps=4,
                                 guidance=4.0, seed=14, sampler="", device="auto")})))
          (report "generate" img layer new)
          (save img new "{o('generate-new.png')}")
          (gimp-image-delete img)))'''))
    # 2b. the feathered selection as each pixel's strength (2.10: the -full twin)
    cases.append(("differential", f'''
      (let* ((img (open-png "{p('coffee.png')}")) (layer (active-layer img)))
        (gimp-image-select-ellipse img CHANNEL-OP-REPLACE 150 80 300 240)
        (gimp-selection-feather img 80)
        (let* ((new (car {inpaint(model=model, cls="3", steps=4, strength=1.0, guidance=3.0,
                                  seed=8, sampler="ddim", grow=0, device="auto",
                                  mask_mode="differential")})))
          (report "differential" img layer new) {saves('differential')}
          (gimp-image-delete img)))'''))
    # 10. outpaint: the canvas grows 10 px at the top, 20 left, 30 right
    cases.append(("outpaint", f'''
      (let* ((img (open-png "{p('chelsea.png')}")) (layer (active-layer img)))
        (save img layer "{o('outpaint-orig.png')}")
        (let* ((new (car {g.call("plug-in-dit-outpaint", model=model, cls="Bag", steps=4,
                                 strength=1.0, guidance=4.0, seed=21, sampler="", grow=0,
                                 device="auto", top=10, left=20, bottom=0, right=30)})))
          (report "outpaint" img layer new)
          (say "outpaint size=" (image-size img))
          (save img new "{o('outpaint-new.png')}")
          (gimp-image-delete img)))'''))
    # 12. detail: the selection and its context worked at up to 200 px, not 16
    cases.append(("detail", f'''
      (let* ((img (open-png "{p('chelsea.png')}")) (layer (active-layer img)))
        (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 120 60 150 120)
        (let* ((new (car {inpaint(model=model, cls="dress", steps=5, strength=1.0, guidance=4.0,
                                  seed=41, sampler="", grow=0, device="auto", detail=200)})))
          (report "detail" img layer new) {saves('detail')}
          (gimp-image-delete img)))'''))
    # 11. three variations of an inpaint: a layer group, one layer per seed
    cases.append(("variations", f'''
      (let* ((img (open-png "{p('chelsea.png')}")) (layer (active-layer img)))
        (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 120 60 150 120)
        (let* ((new (car {inpaint(model=model, cls="dress", steps=4, strength=1.0, guidance=4.0,
                                  seed=31, sampler="", grow=0, device="cpu", variations=3)})))
          (report "variations" img layer new)
          (say "variations children=\\"" (child-names new) "\\"")
          (save img (vector-ref (children new) 0) "{o('variations-0.png')}")
          (save img (vector-ref (children new) 2) "{o('variations-2.png')}")
          (save img layer "{o('variations-orig.png')}")
          (save-selection img "{o('variations-mask.png')}")
          (gimp-image-delete img)))'''))
    # 13. a text model inpaints from a prompt (GIMP 2.10: the prompt as the
    # class; 3: the named prompt, with a negative prompt)
    words = {"prompt": PROMPT} if g.major == 2 else {"prompt": PROMPT, "negative_prompt": "blurry"}
    cases.append(("prompt", f'''
      (let* ((img (open-png "{p('chelsea.png')}")) (layer (active-layer img)))
        (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 120 60 150 120)
        (let* ((new (car {inpaint(model=text, steps=4, strength=1.0, guidance=4.0, seed=51,
                                  sampler="", grow=0, device="auto", **words)})))
          (report "prompt" img layer new) {saves('prompt')}
          (gimp-image-delete img)))'''))
    if g.major == 3:  # 9. generate without a drawable: the new layer goes on top
        cases.append(("generate0", f'''
      (let* ((img (open-png "{p('coffee.png')}")) (layer (active-layer img)))
        (let* ((new (car {g.call("plug-in-dit-generate", vector="(vector)", model=model,
                                 cls="Sandal", steps=4, guidance=4.0, seed=16, sampler="",
                                 device="auto")})))
          (report "generate0" img layer new)
          (gimp-image-delete img)))'''))
    return cases


def run_batch(g, args, root):
    photos = photos_dir(args.srcdir)
    model = make_model(args.srcdir, root)
    text = make_text_model(args.srcdir, root)
    out = os.path.join(args.outdir, f"batch-gimp{g.major}")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    prof = Profile(g, args, root)
    prof.env["DIT_DEFAULT_MODEL"] = model  # "" in the img2img case
    cases = batch_script(g, photos, model, text, out)
    script = g.prelude + "\n".join(case_script(n, b) for n, b in cases)
    output = prof.gimp([script], what="batch")
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
            check(res.get("alpha") == res.get("srcalpha"),
                  f"{name}: the new layer has an alpha channel ({res.get('alpha')}) exactly "
                  f"when the source has one ({res.get('srcalpha')})")
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
    edit_case("differential", "Dress", 8, extra=("--follows", "--min-changed", "0"),
              size=(600, 400))

    def outpaint(res):
        check(res["layers"] == "2" and res["name"] == "DiT Bag seed 21",
              f"outpaint: a new layer '{res['name']}'")
        check(res["size"] == "501x310", f"outpaint: the canvas grew from 451x300 to {res['size']}")
        check((res["width"], res["height"], res["offx"], res["offy"]) == ("501", "310", "0", "0"),
              "outpaint: the new layer covers the grown layer")
        check(run_check(args, "placed", o("outpaint-orig.png"), o("outpaint-new.png"), "20", "10")
              == 0, "outpaint: the layer's pixels bit-identical at their new place, the border filled")
    verdict("outpaint", outpaint)

    def variations(res):
        check(res["layers"] == "2" and res["name"] == "DiT Dress × 3",
              f"variations: one layer group '{res['name']}' above the source")
        want = "".join(f"DiT Dress seed {s};" for s in (31, 32, 33))
        check(res["children"] == want, f"variations: its layers, named by seed: {res['children']}")
        for k in (0, 2):
            check(run_check(args, "compare", o("variations-orig.png"), o(f"variations-{k}.png"),
                            o("variations-mask.png")) == 0,
                  f"variations: layer {k} keeps the source outside the selection")
        check(run_check(args, "compare", o("variations-0.png"), o("variations-2.png"),
                        o("variations-mask.png"), "--min-changed", "0.5") == 0,
              "variations: seeds 31 and 33 differ inside the selection")
    verdict("variations", variations)
    edit_case("detail", "Dress", 41, size=(451, 300))
    edit_case("u16", "Sneaker", 9, depth=16)
    edit_case("f32", "Shirt", 15, depth=16)
    edit_case("gray", "Bag", 10, channels=1, size=(256, 256))
    edit_case("offset", "Coat", 11, extra=("--offset", "20,30", "--alpha", "--min-changed", "0.8"),
              channels=4, off=(20, 30))
    edit_case("img2img", "Trouser", 12, extra=("--min-changed", "0.9"))
    edit_case("img2imgsel", "T-shirt/top", 13)
    edit_case("prompt", PROMPT_LABEL, 51, size=(451, 300))

    def generate(res):
        check(res["layers"] == "2", "generate: the image has 2 layers")
        check(res["name"] == "DiT Sandal seed 14", f"generate: new layer named '{res['name']}'")
        check((res["width"], res["height"]) == ("600", "400"), "generate: layer of the image's size")
        check(run_check(args, "nonblank", o("generate-new.png")) == 0, "generate: not blank")
    verdict("generate", generate)
    if g.major == 3:
        def generate0(res):
            check(res["layers"] == "2" and res["name"] == "DiT Sandal seed 16",
                  f"generate0: a new layer '{res['name']}' without a drawable")
            check(res["active"] == "yes" and res["above"] == "yes",
                  "generate0: the new layer is selected and on top")
        verdict("generate0", generate0)

    # GIMP 3: its Python plug-ins end with wire_read() where PyGObject is
    # missing, and every plug-in's last gimp_flush() meets a closed pipe
    bad = re.findall(r".*(?:CRITICAL|segmentation|plug-in crashed|dit-gimp.*WARNING"
                     + (r"|wire_read" if g.major == 2 else "") + ").*", output, re.I)
    bad = [l for l in bad if "gimp_flush(): error: Broken pipe" not in l]
    if bad:
        log(f"FAIL: {g.label} reported:\n" + "\n".join(bad))
        failed.append("stderr")
    if failed:
        log(output)
        raise Failure("failed: " + ", ".join(failed))


# ---- errors ------------------------------------------------------------------------

SEL = " (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 10 10 50 50)"
ARGS = dict(cls="1", steps=4, strength=1.0, guidance=4.0, seed=1, sampler="", grow=0,
            device="auto")

# case, Script-Fu setup, procedure, arguments, expected message, GIMP versions
ERRORS = [
    ("empty", "(gimp-selection-none img)", "plug-in-dit-inpaint", {},
     "Inpainting needs a selection: select the region to regenerate first", (2, 3)),
    ("indexed",
     '(gimp-image-convert-indexed img CONVERT-DITHER-NONE CONVERT-PALETTE-GENERATE 16 FALSE FALSE "")'
     + SEL, "plug-in-dit-inpaint", {},
     "DiT does not work on indexed images: convert the image to RGB or grayscale first", (2, 3)),
    ("offlayer",
     "(gimp-image-resize img 651 300 200 0)"
     " (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 10 10 100 100)",
     "plug-in-dit-inpaint", {}, "The selection does not overlap the active layer", (2, 3)),
    ("group",
     "(let* ((grp (car {group-new}))) (gimp-image-insert-layer img grp 0 0)"
     " (gimp-image-reorder-item img layer grp 0) (set! layer grp))" + SEL,
     "plug-in-dit-inpaint", {}, "DiT cannot work on a layer group: select one of its layers",
     (2, 3)),
    ("class", SEL, "plug-in-dit-inpaint", {"cls": "Unicorn"},
     "Unknown class 'Unicorn': it is not one of this model's labels", (2, 3)),
    ("cuda", SEL, "plug-in-dit-img2img", {"strength": 0.5, "device": "cuda"},
     "use the CPU device", (2, 3)),
    ("model", SEL, "plug-in-dit-inpaint", {"model": "/nonexistent/model"},
     "Could not load the model", (2, 3)),
    # a text model without a prompt (GIMP 2.10: an empty class); a class
    # model given one (GIMP 3: 2.10 has no prompt argument)
    ("noprompt", SEL, "plug-in-dit-inpaint", {"model": "{text-model}", "cls": ""},
     "This is a text model: type a prompt", (2, 3)),
    ("classprompt", SEL, "plug-in-dit-inpaint", {"prompt": "a red tulip"},
     "This model takes a class, not a prompt", (3,)),
    # GIMP 3 passes every selected drawable; DiT takes one
    ("drawables",
     "(let* ((l2 (car (gimp-layer-copy layer)))) (gimp-image-insert-layer img l2 0 0)"
     " (set! extra (list l2)))" + SEL,
     "plug-in-dit-inpaint", {}, "DiT works on one layer at a time: select exactly one layer",
     (3,)),
]


def error_cases(g):
    return [e for e in ERRORS if g.major in e[5]]


def error_script(g, photos, model, cases, text=None):
    scripts = []
    for name, setup, proc, extra, _, _ in cases:
        setup = setup.replace("{group-new}", "(gimp-layer-group-new img)" if g.major == 2
                              else '(gimp-group-layer-new img "group")')
        kw = {**ARGS, "model": model, **extra}
        if kw["model"] == "{text-model}":
            kw["model"] = text
        if proc.endswith("generate"):
            kw.pop("strength"), kw.pop("grow")
        # GIMP 3: the layer and any others the setup selected (extra)
        call = g.call(proc, vector="(list->vector (cons layer extra))", **kw)
        scripts.append(f'''
          (let* ((img (open-png "{os.path.join(photos, 'chelsea.png')}"))
                 (layer (active-layer img)) (extra '()) (n 0))
            {setup}
            (set! n (layer-count img))
            (say "{name} result=" (catch "refused" {call} "accepted")
                 " layers=" (num (layer-count img)) " before=" (num n))
            (gimp-image-delete img))''')
    return g.prelude + "\n".join(scripts)


def run_errors(g, args, root):
    photos = photos_dir(args.srcdir)
    model = make_model(args.srcdir, root)
    text = make_text_model(args.srcdir, root)
    prof = Profile(g, args, root)
    cases = error_cases(g)
    output = prof.gimp([error_script(g, photos, model, cases, text)], what="errors")
    r = results(output)
    failed = []
    for name, _, _, _, message, _ in cases:
        res = r.get(name, {})
        ok = (res.get("result") == "refused" and res.get("layers") == res.get("before")
              and message in output)
        log(f"{'ok' if ok else 'FAIL'}: {name}: refused={res.get('result')}, "
            f"layers={res.get('before')} -> {res.get('layers')}, message "
            f"{'found' if message in output else 'MISSING'}: {message}")
        if not ok:
            failed.append(name)
    if failed:
        log(output)
        raise Failure("failed: " + ", ".join(failed))


# ---- one class rule: the CLI and the plug-in on the same strings ---------------------

def write_png(path, w, h, pixel):
    """An 8-bit RGB PNG from pixel(x, y) -> (r, g, b), without libraries."""
    import struct
    import zlib
    raw = b"".join(b"\0" + bytes(c for x in range(w) for c in pixel(x, y)) for y in range(h))
    chunk = lambda tag, data: (struct.pack(">I", len(data)) + tag + data
                               + struct.pack(">I", zlib.crc32(tag + data) & 0xffffffff))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def make_unconditional_model(args, root):
    data = os.path.join(root, "uncond-data")
    for k, cls in enumerate(("a", "b")):
        os.makedirs(os.path.join(data, cls))
        for i in range(2):
            write_png(os.path.join(data, cls, f"{i}.png"), 16, 16,
                      lambda x, y: ((x * 16 + k * 90) % 256, (y * 16 + i * 40) % 256, 128))
    out = os.path.join(root, "uncond")
    p = subprocess.run([args.dit, "train", "--data", data, "--unconditional", "--size", "16",
                        "--patch", "4", "--hidden", "32", "--depth", "1", "--heads", "2",
                        "--batch", "2", "--steps", "1", "--every", "1", "--validate-every", "0",
                        "--quiet", "--out", out], capture_output=True, text=True)
    check(p.returncode == 0, f"dit train --unconditional made a model ({p.stderr.strip()[-200:]})")
    return os.path.join(out, "model")


CLASS_STRINGS = {"labelled": ("", "3", "10", "11", "-1", "dress", "DRESS", "ankle boot", "Unicorn"),
                 "unconditional": ("", "0", "Dress")}


def cli_class(args, model, cls, root):
    """(accepted, class label) as `dit generate` resolves it."""
    p = subprocess.run([args.dit, "generate", "-m", model, "--class", cls, "--steps", "1",
                        "--seed", "3", "-o", os.path.join(root, "cli-class.png")],
                       capture_output=True, text=True)
    m = re.search(r"^class: (.*)$", p.stderr, re.M)
    return (p.returncode == 0, m.group(1).strip() if m and p.returncode == 0 else None), p.stderr


def run_classes(g, args, root):
    if not args.dit:
        skip("no dit CLI given (--dit)")
    models = {"labelled": make_model(args.srcdir, root),
              "unconditional": make_unconditional_model(args, root)}
    prof = Profile(g, args, root)
    scripts, expected = [], {}
    for kind, model in models.items():
        for i, cls in enumerate(CLASS_STRINGS[kind]):
            name = f"{kind}{i}"
            expected[name], cli_err = cli_class(args, model, cls, root)
            new_img = ("(car (gimp-image-new 16 16 RGB))")
            layer = ("(car (gimp-layer-new img 16 16 RGB-IMAGE \"bg\" 100 LAYER-MODE-NORMAL))"
                     if g.major == 2 else
                     "(car (gimp-layer-new img \"bg\" 16 16 RGB-IMAGE 100 LAYER-MODE-NORMAL))")
            call = g.call("plug-in-dit-generate", model=model, cls=cls, steps=1, guidance=4.0,
                          seed=3, sampler="", device="cpu")
            scripts.append(f'''
          (let* ((img {new_img}) (layer {layer}))
            (gimp-image-insert-layer img layer 0 0)
            (say "{name} " (catch "result=refused"
                (let* ((new (car {call})))
                  (string-append "result=accepted name=\\"" (car (gimp-item-get-name new)) "\\""))))
            (gimp-image-delete img))''')
            log(f"CLI {kind} --class {cls!r}: {expected[name]}"
                + ("" if expected[name][0] else f" ({cli_err.strip().splitlines()[-1]})"))
    output = prof.gimp([g.prelude + "\n".join(scripts)], what="classes")
    r = results(output)
    failed = []
    for name, (cli_ok, cli_label) in expected.items():
        res = r.get(name, {})
        ok_plugin = res.get("result") == "accepted"
        m = re.match(r"DiT (.*) seed 3$", res.get("name", ""))
        label = m.group(1) if m and ok_plugin else None
        same = ok_plugin == cli_ok and label == cli_label
        log(f"{'ok' if same else 'FAIL'}: {name}: CLI {cli_ok, cli_label}, "
            f"{g.label} {ok_plugin, label}")
        if not same:
            failed.append(name)
    # the comparison means something only if both outcomes occur
    check(any(ok for ok, _ in expected.values()) and not all(ok for ok, _ in expected.values()),
          "the class strings include accepted and refused ones")
    if failed:
        log(output)
        raise Failure("failed: " + ", ".join(failed))


# ---- undo and the dialog inside GIMP (GIMP with its UI under Xvfb) ---------------------


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


def start_xvfb():
    """Xvfb on a free display; returns (process, ':N')."""
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
    return xvfb, f":{number}"


def run_ui(g, args, root):
    photos = photos_dir(args.srcdir)
    for tool in ("Xvfb", "xdotool"):
        if not shutil.which(tool):
            skip(f"{tool} is not installed")
    model = make_model(args.srcdir, root)
    prof = Profile(g, args, root, gui=True)
    xvfb, display = start_xvfb()
    # the dialog starts on the default model ("")
    env = dict(prof.env, DISPLAY=display, DIT_DEFAULT_MODEL=model)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gimp = None
    xd = lambda *a: subprocess.run(["xdotool", *a], env=env, capture_output=True, text=True)
    v3 = g.major == 3
    try:
        if v3:
            cmd = [g.gui, "--no-splash", "--batch-interpreter=plug-in-script-fu-eval",
                   "-b", f'(plug-in-script-fu-server #:run-mode RUN-NONINTERACTIVE '
                         f'#:ip "127.0.0.1" #:port {port} #:logfile "")']
        else:
            cmd = [g.gui, "--no-splash", "--no-fonts", "-b",
                   f'(plug-in-script-fu-server RUN-NONINTERACTIVE "127.0.0.1" {port} "")']
        # its own process group: the plug-ins go with it; output to a file, which
        # no plug-in left behind can hold open
        gimp_log = open(os.path.join(root, "gimp.log"), "w+")
        gimp = subprocess.Popen(cmd, env=env, cwd=root, stdout=gimp_log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 120
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
        if v3:
            img = call(f'(car (gimp-file-load RUN-NONINTERACTIVE "{photo}"))')
            layer = call(f"(vector-ref (car (gimp-image-get-selected-layers {img})) 0)")
            layers = lambda: call(f"(vector-length (car (gimp-image-get-layers {img})))")
            top_name = lambda: call(f"(car (gimp-item-get-name (vector-ref "
                                    f"(car (gimp-image-get-selected-layers {img})) 0)))")
            valid = f"(car (gimp-item-id-is-valid {layer}))"
        else:
            img = call(f'(car (file-png-load RUN-NONINTERACTIVE "{photo}" "{photo}"))')
            layer = call(f"(car (gimp-image-get-active-layer {img}))")
            layers = lambda: call(f"(car (gimp-image-get-layers {img}))")
            top_name = lambda: call(f"(car (gimp-item-get-name "
                                    f"(car (gimp-image-get-active-layer {img}))))")
            valid = f"(car (gimp-item-is-valid {layer}))"
        disp = call(f"(car (gimp-display-new {img}))")
        call(f"(gimp-image-select-rectangle {img} CHANNEL-OP-REPLACE 100 80 120 90)")
        check(layers() == "1", f"image {img} on display {disp} with one layer and a selection")

        # 1. interactive: our GTK3 dialog opens in the plug-in
        result = {}
        # (GIMP 2.10 opens the dialog on the last or default values, GIMP 3 on
        # these when it has no last ones)
        run = g.call("plug-in-dit-inpaint", run_mode="RUN-INTERACTIVE", image=img,
                     drawables=layer, model="", cls="Sneaker", steps=20, strength=1.0,
                     guidance=4.0, seed=1234, sampler="", grow=0, device="auto")

        def interactive():
            try:
                result["ok"], result["text"] = script_fu_call(port, run, timeout=150)
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
        check(bool(wid), f"the plug-in's GTK3 dialog 'DiT Inpaint' is on {g.label}'s screen")
        time.sleep(1.5)  # drawn, preview included
        shot = os.path.join(args.outdir, f"dit-dialog-gimp{g.major}.png")
        p = subprocess.run([args.dialog_shot, "--grab", wid[0], "--png", shot], env=env,
                           capture_output=True, text=True, timeout=30)
        log((p.stdout + p.stderr).strip())
        check(p.returncode == 0 and run_check(args, "nonblank", shot, "--min-size", "500x300") == 0,
              f"{shot}: the dialog inside {g.label}, a valid, non-blank PNG")
        # class 8 (Bag) and seed 77 through the mnemonics, then OK (Alt+O)
        xd("windowfocus", "--sync", wid[0])
        for keys, text in (("alt+l", "8"), ("alt+e", "77")):
            xd("key", "--clearmodifiers", keys)
            xd("key", "--clearmodifiers", "ctrl+a")
            xd("type", "--delay", "50", text)
        xd("key", "--clearmodifiers", "Tab")
        time.sleep(0.3)
        xd("key", "--clearmodifiers", "alt+o")

        def kept(before=None, tries=240):
            """(window, title) once the dialog's title names a kept result other than before"""
            for _ in range(tries):
                ids = xd("search", "--name", "^DiT Inpaint: Kept").stdout.split()
                title = xd("getwindowname", ids[0]).stdout.strip() if ids else None
                if title and title != before:
                    return ids[0], title
                time.sleep(0.5)
            return None, before
        # the result is kept and the dialog stays, offering another seed
        wid2, first = kept()
        check(first is not None and "DiT Bag seed 77" in first,
              f"after OK the dialog stays open and names the kept layer: {first}")
        # Run again with a new seed; a key press that reached no window (the
        # image window took the focus when the layer came) is pressed again:
        # while the run goes the button is insensitive, so no press counts twice
        wid3, second = None, first
        for _ in range(4):
            xd("windowfocus", "--sync", wid2)
            xd("key", "--clearmodifiers", "alt+h")
            wid3, second = kept(first, tries=60)
            if second != first:
                break
        wid3 = wid3 or wid2
        m = re.search(r"DiT Bag seed (\d+)", second or "")
        check(m is not None and m.group(1) != "77", f"Run again kept another seed: {second}")
        seed2 = m.group(1)
        for _ in range(4):  # Close, pressed again where the press went astray
            xd("windowfocus", "--sync", wid3)
            xd("key", "--clearmodifiers", "alt+c")
            th.join(20)
            if not th.is_alive():
                break
        th.join(90)
        check(not th.is_alive() and result.get("ok"),
              f"Close ended the plug-in's run ({result.get('text', 'still running')})")
        check(layers() == "3", "the two runs added a layer each")
        name = top_name()
        check(name == f'"DiT Bag seed {seed2}"', f"the last is named after its seed: {name}")

        # 2. one Ctrl+Z in the image window: GIMP's own undo
        call("(gimp-displays-flush)")
        xid = call(f"(car (gimp-display-get-window-handle {disp}))")
        if v3:  # GIMP 3 hands out the X11 window id as bytes, little-endian: #(7 0 32 0 ...)
            xid = str(sum(int(b) << (8 * i) for i, b in enumerate(re.findall(r"\d+", xid))))
        xd("windowfocus", "--sync", xid)
        time.sleep(0.5)
        xd("key", "--clearmodifiers", "ctrl+z")
        n = None
        for _ in range(40):
            time.sleep(0.25)
            n = layers()
            if n == "2":
                break
        check(n == "2", f"after one Ctrl+Z the image has {n} layers: the last run's is gone")
        name = top_name()
        check(name == '"DiT Bag seed 77"', f"the first run's layer stays, named after the typed "
              f"class and seed: {name}")
        check(call(valid) == "1", "the source layer is still there")
        # the step before the plug-in (the selection) is not undone: one undo = one run
        check(call(f"(car (gimp-selection-is-empty {img}))") == "0",
              "the selection made before the plug-in is still there")
        xd("key", "--clearmodifiers", "ctrl+y")
        for _ in range(40):
            time.sleep(0.25)
            n = layers()
            if n == "3":
                break
        check(n == "3", f"Ctrl+Y (redo) brings the layer back: {n} layers")

        # 3. Filters > Repeat: the last values (GIMP 3: its GimpProcedureConfig), no dialog
        if v3:
            last = (f"(plug-in-dit-inpaint #:run-mode RUN-WITH-LAST-VALS #:image {img} "
                    f"#:drawables (vector {layer}))")
        else:
            last = (f'(plug-in-dit-inpaint RUN-WITH-LAST-VALS {img} {layer} '
                    f'"" "" 0 0 0 0 "" 0 "")')
        ok, text = script_fu_call(port, last, timeout=120)
        check(ok and layers() == "4", f"a run with the last values adds a layer ({text})")
        name = top_name()
        # the last run's values; GIMP numbers a repeated layer name: "... #1"
        check(re.fullmatch(rf'"DiT Bag seed {seed2}( #\d+)?"', name) is not None,
              f"with the last run's class and seed: {name}")

        # 4. variations: a layer group of two; one Ctrl+Z takes the group and its layers
        before = int(layers())
        ok, text = script_fu_call(port, g.call(
            "plug-in-dit-inpaint", image=img, drawables=layer, model="", cls="Bag", steps=4,
            strength=1.0, guidance=4.0, seed=5, sampler="", grow=0, device="auto", variations=2),
            timeout=120)
        check(ok and int(layers()) == before + 1,
              f"two variations add one item, their layer group ({text})")
        call("(gimp-displays-flush)")
        xd("windowfocus", "--sync", xid)
        time.sleep(0.5)
        xd("key", "--clearmodifiers", "ctrl+z")
        for _ in range(40):
            time.sleep(0.25)
            n = layers()
            if int(n) == before:
                break
        check(int(n) == before, f"one Ctrl+Z removes the group: {n} top-level layers")
        try:  # GIMP closes the connection as it quits
            script_fu_call(port, "(gimp-quit 1)", timeout=10)
        except (OSError, Failure):
            pass
    except (OSError, Failure) as e:
        if gimp:
            stop_group(gimp)
            gimp_log.seek(0)
            log(gimp_log.read())
        raise Failure(str(e))
    finally:
        if gimp:
            try:
                gimp.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
            stop_group(gimp)
            gimp_log.close()
        xvfb.terminate()
        xvfb.wait()


def stop_group(proc):
    """Kills what is left of the process group we started for GIMP."""
    try:
        os.killpg(proc.pid, 9)
    except ProcessLookupError:
        pass
    proc.wait()


# ---- the PDB (GIMP 3, compared with 2.10) ------------------------------------------------

# the documented arguments (README): GIMP 3 kind and its range/default line
DOC_ARGS = {
    "model": "string \"\"",
    "class": "string \"\"",
    "steps": "int 0 1000 20",
    "strength": "double 0 1 {strength}",
    "guidance": "double 0 100 4",
    "seed": "int -1 2147483647 -1",
    "sampler": "choice default default,ddpm,ddim,dpm++2m,euler,cold",
    "grow": "int 0 64 0",
    "device": "choice auto auto,cpu,cpu-bf16,cuda",
    "mask-mode": "choice differential regenerate,differential",
    "guidance-from": "double 0 1 0",
    "guidance-to": "double 0 1 1",
    "expand": "int 0 1024 0",
    "feather": "int -1 1024 -1",
    "colour-match": "int 0 1 0",
    "resample-jump": "int 0 1000 0",
    "resample-count": "int 1 20 1",
    "variations": "int 1 16 1",
    "detail": "int 0 4096 0",
    "top": "int 0 4096 64",
    "left": "int 0 4096 64",
    "bottom": "int 0 4096 64",
    "right": "int 0 4096 64",
    "prompt": "string \"\"",
    "negative-prompt": "string \"\"",
}
STRENGTH = {"plug-in-dit-inpaint": "1", "plug-in-dit-img2img": "0.75", "plug-in-dit-outpaint": "1"}
# GIMP 2.10's procedures: the first wave's, their -full twins, outpaint
PROCS2 = PROCS + tuple(p + FULL for p in PROCS if not p.endswith("outpaint"))
TYPES2 = {"int": 0, "double": 3, "string": 4, "choice": 4}  # GimpPDBArgType


def pdb2(args, root):
    """GIMP 2.10's registration: {proc: (menu path, [(name, type)])}, or None."""
    g = Gimp(2, args)
    if not g.plugin or not g.console:
        log("(no GIMP 2.10 plug-in: comparing GIMP 3 with the documented arguments only)")
        return None
    prof = Profile(g, args, os.path.join(root, "gimp2"))
    script = PRELUDE2 + r'''
      (let* ((q (gimp-plugins-query "DiT")) (i 0)) ; searches the menu labels
        (while (< i (car q))
          (say (list-ref (list-ref q 11) i) " menu=\"" (list-ref (cadr q) i) "\"")
          (set! i (+ i 1))))
      (for-each (lambda (proc)
        (let* ((n (list-ref (gimp-procedural-db-proc-info proc) 6)) (i 0))
          (while (< i n)
            (let* ((a (gimp-procedural-db-proc-arg proc i)))
              (say proc " arg" (num i) "=" (cadr a) ":" (num (car a))))
            (set! i (+ i 1)))))
        (list ''' + " ".join(f'"{p}"' for p in PROCS2) + "))"
    output = prof.gimp([script], what="GIMP 2.10 PDB")
    r = results(output)
    out = {}
    for proc in PROCS2:
        res = r.get(proc, {})
        argv = [res[k].split(":") for k in sorted((k for k in res if k.startswith("arg")),
                                                  key=lambda k: int(k[3:]))]
        out[proc] = (res.get("menu", ""), [(a, int(t)) for a, t in argv])
    return out


def run_pdb(args, root):
    g = Gimp(3, args)
    os.makedirs(os.path.join(root, "gimp3"))
    prof = Profile(g, args, os.path.join(root, "gimp3"), pdb_check=True)
    output = prof.gimp([f'(plug-in-dit-test-pdb #:run-mode RUN-NONINTERACTIVE '
                        f'#:procedures "{",".join(PROCS)}")'], what="GIMP 3 PDB")
    lines = re.findall(r"^DITPDB (.*)$", output, re.M)
    if not lines:
        log(output)
        raise Failure("pdb-check3 printed nothing")
    reg2 = pdb2(args, root)
    for proc in PROCS:
        mine = [l.split(" ", 1)[1] for l in lines if l.startswith(proc + " ")]
        check(f"menu {MENU_PATH}" in mine, f"GIMP 3: {proc} is under {MENU_PATH}")
        argl = [l.split(" ", 2)[2] for l in mine if l.startswith("arg ")]
        names3 = [a.split(" ")[0] for a in argl]
        head = ["run-mode", "image", "drawables"]
        check(names3[:3] == head, f"GIMP 3: {proc} starts with {head}")
        check(names3[3:] == list(PROC_ARGS[proc]), f"GIMP 3: {proc} arguments {names3[3:]}")
        for a in argl[3:]:
            name, spec = a.split(" ", 1)
            want = DOC_ARGS[name].format(strength=STRENGTH.get(proc, ""))
            check(spec == want, f"GIMP 3: {proc} {name}: {spec}")
        check(any(l == "return 0 layer GimpParamLayer" for l in mine),
              f"GIMP 3: {proc} returns the new layer")
        if reg2 is None:
            continue
        menu2 = reg2[proc][0]
        check(menu2.startswith(MENU_PATH + "/"), f"GIMP 2.10: {proc} is under {menu2}")
        first_wave = not proc.endswith("outpaint")
        # (2.10 name, which of GIMP 3's arguments it takes)
        for name2, full in ((proc, not first_wave),) + (((proc + FULL, True),) if first_wave else ()):
            args2 = reg2[name2][1]
            names2 = [n for n, _ in args2]
            both = [i for i, n in enumerate(names3[3:])
                    if n not in PROMPT_ARGS and (full or n not in LATER)]
            check(names2[:3] == ["run-mode", "image", "drawable"]
                  and names2[3:] == [names3[3 + i] for i in both],
                  f"GIMP 2.10 gives {name2} GIMP 3's arguments but {PROMPT_ARGS}"
                  + ("" if full else f" and {tuple(LATER)}") + f": {names2[3:]}")
            kinds3 = [argl[3 + i].split(" ")[1] for i in both]
            check([t for _, t in args2[3:]] == [TYPES2[k] for k in kinds3],
                  f"GIMP 2.10 {name2} types {[t for _, t in args2[3:]]} match GIMP 3's {kinds3}")
    log("\n".join(l for l in lines if l.startswith("run ")))
    runs = {m.group(1): (m.group(2), m.group(3))
            for m in re.finditer(r"^DITPDB run drawables=(\d) status=(\S+) error=(.*)$",
                                 output, re.M)}
    status, error = runs.get("2", ("", ""))
    check(status == "calling-error" and "select exactly one layer" in error,
          f"two selected layers: {status}: {error}")
    status, error = runs.get("1", ("", ""))
    check(status == "execution-error" and "needs a selection" in error,
          f"no selection: {status}: {error}")


# ---- dialog and i18n -----------------------------------------------------------------


def run_dialog(args, root):
    if not shutil.which("xvfb-run"):
        skip("xvfb-run is not installed")
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
    # an empty Class field names the class it means; Steps spans Script-Fu's range
    p = subprocess.run(["xvfb-run", "-a", args.dialog_shot, "--texts", "--class", "",
                        "--labels", os.path.join(model, "labels.txt"), "--default-model", model],
                       env=env, capture_output=True, text=True, timeout=60)
    texts = p.stdout.splitlines()
    check(p.returncode == 0, "dialog-shot --texts ran")
    check("placeholder: T-shirt/top (class 0)" in texts,
          "an empty Class field shows 'T-shirt/top (class 0)', the class it means")
    steps = texts[texts.index("Steps:") - 1] if "Steps:" in texts else ""
    check(steps == "range: 1 - 1000",
          f"the Steps field goes from 1 to 1000 as plug-in-dit-*'s steps do ({steps!r})")
    # under the Device row: where Automatic runs (no GPU here) and how fast
    note = [t for t in texts if re.match(r"CPU, (fp32 products on (OpenBLAS|oneDNN)|bf16 "
                                         r"products), \d+ GFLOP/s measured", t)]
    check(len(note) == 1, f"the device note says what Automatic runs: {note}")
    # the model line describes the model (its config, read without weights)
    line = [t for t in texts if re.fullmatch(r"Default model: DiT, \d+x\d+ pixels, 10 classes", t)]
    check(len(line) == 1, f"the model line says what the default model makes: {line}")
    # the Model combo offers the library's models by name, then the choosers
    lib = os.path.join(root, "data", "gimp-dit", "models")
    os.makedirs(lib, exist_ok=True)
    os.symlink(os.path.join(args.srcdir, "data", "models", "default"), os.path.join(lib, "garments"))
    p = subprocess.run(["xvfb-run", "-a", args.dialog_shot, "--texts", "--labels",
                        os.path.join(model, "labels.txt"), "--default-model", model],
                       env=dict(env, XDG_DATA_HOME=os.path.join(root, "data")),
                       capture_output=True, text=True, timeout=60)
    combo = [t for t in p.stdout.splitlines() if t.startswith("items: Default model |")]
    check(len(combo) == 1 and "| garments |" in combo[0] and
          combo[0].endswith("Other folder… | Other file… |"),
          f"the Model combo: the default, the library's models, the choosers ({combo})")

    # a text model: a prompt box (the recent prompts below it) and a negative
    # prompt in place of the class; screenshot OUTDIR/dit-dialog-text.png
    text = make_text_model(args.srcdir, root)
    labels = os.path.join(model, "labels.txt")
    tshot = os.path.join(args.outdir, "dit-dialog-text.png")
    if os.path.exists(tshot):
        os.remove(tshot)
    words = ["--prompt", PROMPT, "--recent", PROMPT, "--recent", "a lighthouse on a cliff at dusk"]
    p = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24", args.dialog_shot,
                        "--png", tshot, "--photo", os.path.join(photos, "chelsea.png"),
                        "--labels", labels, "--default-model", model, "--model", text] + words,
                       env=env, capture_output=True, text=True, timeout=120)
    log(p.stdout + p.stderr)
    check(p.returncode == 0 and run_check(args, "nonblank", tshot, "--min-size", "500x300") == 0,
          f"{tshot}: the dialog with a text model, a valid, non-blank PNG")

    def shown(*extra):
        p = subprocess.run(["xvfb-run", "-a", args.dialog_shot, "--texts", "--visible-only",
                            "--labels", labels, "--default-model", model, *extra],
                           env=env, capture_output=True, text=True, timeout=60)
        check(p.returncode == 0, "dialog-shot --texts --visible-only ran")
        return p.stdout.splitlines()
    texts = shown("--model", text, *words)
    rows = ("What to paint (prompt):", "Keep out (negative prompt):")
    check(all(r in texts for r in rows) and "Class:" not in texts,
          "a text model shows the prompt and the negative prompt, not the class")
    check("pixart-tiny: text model (PixArt), paints what the prompt says" in texts,
          "the model line says it is a text model")
    recent = [t for t in texts if t.startswith("items: Recent prompts… |")]
    check(len(recent) == 1 and recent[0].startswith("items: Recent prompts… | a red tulip in a ")
          and recent[0].endswith("| a lighthouse on a cliff at dusk |"),
          f"the recent prompts are offered, newest first: {recent}")
    texts = shown()
    check("Class:" in texts and not any(r in texts for r in rows),
          "a class model shows the class, not the prompt")


# msgid -> what each language must show (GtkLabel drops the mnemonic '_')
ZH_EXPECT = ["DiT 局部重绘", "步数", "强度", "引导强度", "种子", "采样器", "预览", "随机"]
TITLES = {"de": "DiT Inpainting", "fr": "DiT Retouche"}
ZH_MESSAGE = "局部重绘需要选区"
ZH_LABEL = "DiT 局部重绘(_I)..."


def dialog_texts(args, lang):
    env = dict(os.environ, LANG="C.UTF-8", LANGUAGE=lang)
    env.pop("LC_ALL", None)
    env.pop("LC_MESSAGES", None)
    p = subprocess.run(["xvfb-run", "-a", args.dialog_shot, "--texts"], env=env,
                       capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise Failure(f"dialog-shot --texts failed: {p.stderr}")
    return p.stdout


def run_i18n(g, args, root):
    if g.major == 3:
        return run_i18n3(g, args, root)
    if not shutil.which("xvfb-run"):
        skip("xvfb-run is not installed")
    g.require()
    en = dialog_texts(args, "C")
    zh = dialog_texts(args, "zh_CN")
    log("zh_CN dialog texts:\n" + zh)
    for word in ZH_EXPECT:
        check(word in zh, f"zh_CN dialog shows '{word}'")
    en_lines = set(en.splitlines())
    zh_lines = zh.splitlines()
    same = [l for l in zh_lines if l in en_lines and re.search(r"[a-z]{3}", l)
            and l not in ("DiT", "CPU", "dpm++2m") and not l.startswith(("range: ", "items: "))]
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
    for en, zh in (("DiT _Inpaint...", ZH_LABEL), ("DiT _Image to Image...", "DiT 图生图(_I)..."),
                   ("DiT _Generate...", "DiT 生成(_G)...")):
        check(f'msgid "{en}"\nmsgstr "{zh}"' in text, f"zh_CN menu label {en} -> {zh}")
    # the plug-in's own message in real GIMP
    photos = photos_dir(args.srcdir)
    model = make_model(args.srcdir, root)
    prof = Profile(g, args, root, lang="zh_CN")
    output = prof.gimp([error_script(g, photos, model, ERRORS[:1])], what="zh_CN")
    check(ZH_MESSAGE in output, "the plug-in's error message is in Chinese in GIMP")


def run_i18n3(g, args, root):
    """GIMP 3 binds the plug-in's domain to the catalogues beside the binary."""
    if not args.locale3:
        skip("dit-gimp3's catalogues were not built")
    photos = photos_dir(args.srcdir)
    model = make_model(args.srcdir, root)
    prof = Profile(g, args, root, lang="zh_CN", pdb_check=True)
    check("DIT_LOCALEDIR" not in prof.env, "no $DIT_LOCALEDIR: only the installed catalogues")
    output = prof.gimp([error_script(g, photos, model, ERRORS[:1]),
                        '(plug-in-dit-test-pdb #:run-mode RUN-NONINTERACTIVE '
                        '#:procedures "plug-in-dit-inpaint")'], what="zh_CN")
    check(ZH_MESSAGE in output, "the plug-in's error message is in Chinese in GIMP 3")
    check(f"DITPDB plug-in-dit-inpaint label {ZH_LABEL}" in output,
          f"GIMP 3 registered the Chinese menu label {ZH_LABEL}")


def run_first_run(g, args, root):
    """The README's first command, its GIMP run as written (paths redirected
    to this test): the embedded model inpaints the example garment's top half,
    and the result's nearest Fashion-MNIST training image has the requested
    class, as dit validate judges a sample."""
    readme = open(os.path.join(args.srcdir, "README.md"), encoding="utf-8").read()
    cmds = [l for l in readme.splitlines() if l.startswith("$(command -v sudo) .ci/install-deps")]
    check(len(cmds) == 1, "the README has its first command")
    scripts = [b for b in re.findall(r"-b '([^']*)'", cmds[0]) if "plug-in-dit-inpaint" in b]
    check(len(scripts) == 1, "the first command runs plug-in-dit-inpaint")
    want = re.search(r'plug-in-dit-inpaint RUN-NONINTERACTIVE image layer "" "([^"]+)"', scripts[0])
    check(want is not None, "the command names a class")
    example = os.path.join(args.srcdir, "data", "examples", "garment.png")
    out = os.path.join(root, "garment-dit.png")
    script = scripts[0].replace('"data/examples/garment.png"', f'"{example}"')
    script = script.replace('"garment-dit.png"', f'"{out}"')
    prof = Profile(g, args, root)
    prof.env.pop("DIT_DEFAULT_MODEL", None)  # the embedded model, as a user gets it
    prof.gimp([script], what="README")
    check(os.path.exists(out), f"the README's command wrote {out}")
    p = subprocess.run([args.cli_check, "nn-class", out], capture_output=True, text=True)
    if p.returncode == 77:
        skip(f"no Fashion-MNIST training set: {p.stderr.strip()}")
    log(p.stdout.strip())
    got = re.match(r"class \d+ (.+) rms", p.stdout)
    check(got is not None and got.group(1) == want.group(1),
          f"the inpainted garment's nearest training image is a {want.group(1)} ({p.stdout.strip()})")
    # the same call with a model of the user's library, by name
    lib = os.path.join(prof.env["XDG_DATA_HOME"], "gimp-dit", "models")
    os.makedirs(lib, exist_ok=True)
    os.symlink(os.path.join(args.srcdir, "data", "models", "default"), os.path.join(lib, "garments"))
    named = os.path.join(root, "garment-named.png")
    script = script.replace('image layer "" "', 'image layer "garments" "')
    prof.gimp([script.replace(f'"{out}"', f'"{named}"')], what="a library model by name")
    p = subprocess.run([args.cli_check, "nn-class", named], capture_output=True, text=True)
    check(os.path.exists(named) and p.stdout.startswith(f"class {got.group(0).split()[1]} "),
          f"the library's 'garments', by name from Script-Fu, inpaints too ({p.stdout.strip()})")


def main():
    cases = ["batch", "errors", "ui", "dialog", "i18n", "pdb", "classes", "first-run"]
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=cases + [c + "-gimp3" for c in ("batch", "errors", "ui",
                                                                    "i18n", "classes")])
    ap.add_argument("--plugin", default="", help="dit-gimp (GIMP 2.10)")
    ap.add_argument("--plugin3", default="", help="dit-gimp3 (GIMP 3)")
    ap.add_argument("--gimp3-prefix", default="")
    ap.add_argument("--gimp3-libdir", default="")
    ap.add_argument("--pdb-check3", default="")
    ap.add_argument("--locale3", default="", help="dit-gimp3's locale/ folder")
    ap.add_argument("--dit", default="", help="the dit CLI (the classes case)")
    ap.add_argument("--cli-check", default="", help="tests/cli's cli-check (the readme case)")
    ap.add_argument("--check", required=True)
    ap.add_argument("--dialog-shot", required=True)
    ap.add_argument("--srcdir", required=True)
    ap.add_argument("--outdir", required=True)
    args = ap.parse_args()
    case, _, v = args.case.partition("-gimp")
    g = Gimp(int(v) if v else 2, args)
    root = tempfile.mkdtemp(prefix=f"dit-gimp-{args.case}-")
    t0 = time.time()
    try:
        if case in ("batch", "errors", "ui", "i18n", "classes", "first-run"):
            {"batch": run_batch, "errors": run_errors, "ui": run_ui, "i18n": run_i18n,
             "classes": run_classes, "first-run": run_first_run}[case](g, args, root)
        else:
            {"dialog": run_dialog, "pdb": run_pdb}[case](args, root)
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
