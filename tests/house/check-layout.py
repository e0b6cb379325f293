#!/usr/bin/env python3
"""House rules that review would otherwise have to remember (issue 16):
no function in core/ (the CLI included) over 150 lines, no CLI source file
over 600 lines. A function is a definition whose body opens with '{' in
column 0 and closes with '}' in column 0 (the tree's own style, which
clang-format keeps)."""
import pathlib
import re
import sys

MAX_FUNCTION_LINES = 150
MAX_CLI_FILE_LINES = 600

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
problems = []
for path in sorted((root / "core").rglob("*.c")):
    lines = path.read_text(encoding="utf-8").splitlines()
    rel = path.relative_to(root)
    if rel.parts[:2] == ("core", "cli") and len(lines) > MAX_CLI_FILE_LINES:
        problems.append(f"{rel}: {len(lines)} lines (CLI files stay under {MAX_CLI_FILE_LINES})")
    start = None
    for i, line in enumerate(lines):
        if line == "{" and i > 0 and re.search(r"\)\s*$", lines[i - 1]):
            start = i - 1
            # the signature may span lines: walk back to its first line
            while start > 0 and lines[start - 1].strip() and not lines[start - 1].startswith(("}", "/", "#", " *")) \
                    and not lines[start].startswith(("static", "int", "void", "dit", "bool", "float", "double", "size_t", "const", "char", "uint", "int64")):
                start -= 1
        elif line.startswith("}") and start is not None:
            n = i - start + 1
            if n > MAX_FUNCTION_LINES:
                name = re.search(r"(\w+)\s*\(", " ".join(lines[start:start + 3]))
                problems.append(f"{rel}:{start + 1}: {name.group(1) if name else '?'} is {n} lines "
                                f"(functions stay under {MAX_FUNCTION_LINES})")
            start = None
for p in problems:
    print(p)
print(f"{len(problems)} problem(s)")
sys.exit(1 if problems else 0)
