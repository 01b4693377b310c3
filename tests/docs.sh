#!/usr/bin/env bash
# Checks that the documentation says what the code does, and no more:
#
#   1. docs/reference.md has one `###` entry per SQL function registered in
#      anonauth.c's functions[] (showing every registered arity), then one per
#      virtual table (src/), in registration order, and no other entry;
#   2. docs/configuration.md's key table lists exactly the keys of
#      src/config.c's keys[];
#   3. docs/errors.md's code table lists exactly the error codes of
#      src/errors.c;
#   4. every `make <target>` written in README.md or docs/*.md names a target
#      of the Makefile;
#   5. every relative link in README.md and docs/*.md points at an existing
#      file, and at an existing heading (or <a id>) when it has an #anchor.
#
# Prints ok/FAIL lines and "N passed, N failed" last; exits non-zero on any
# failure. Uses Debian's /usr/bin/python3 (standard library only).
set -u
cd "$(dirname "$0")/.."
exec /usr/bin/python3 - "$@" <<'PY'
import glob, os, re, sys

label = os.environ.get("TEST_LABEL", "docs")
passed = failed = 0

def report(ok, what, details=()):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok - {label}: {what}")
    else:
        failed += 1
        print(f"FAIL - {label}: {what}")
        for d in details:
            print(f"    {d}")

def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()

def prose_lines(text):
    """(line number, line) outside fenced code blocks."""
    inside = False
    for n, line in enumerate(text.split("\n"), 1):
        if re.match(r"^\s*```", line):
            inside = not inside
            continue
        if not inside:
            yield n, line

def table_first_cells(text, heading):
    """First cells (code spans) of the table rows under `heading`."""
    cells, on = [], False
    for _, line in prose_lines(text):
        if line.startswith("#"):
            on = line.strip() == heading
            continue
        m = re.match(r"^\|\s*`([^`]+)`\s*\|", line)
        if on and m:
            cells.append(m.group(1))
    return cells

def diff(expected, found):
    out = [f"missing: {k}" for k in expected if k not in found]
    out += [f"not in the code: {k}" for k in found if k not in expected]
    return out

docs = sorted(glob.glob("docs/*.md"))
pages = ["README.md"] + docs

# ---- 1. functions and virtual tables --------------------------------------
src = read("anonauth.c")
block = re.search(r"functions\[\]\s*=\s*\{(.*?)\n\};", src, re.S)
registered = []  # (name, arity) in order
flags = {}       # name -> set of flag macros used
for m in re.finditer(r'\{\s*"([a-z_0-9]+)"\s*,\s*(\d+)\s*,\s*(\w+)', block.group(1) if block else ""):
    registered.append((m.group(1), int(m.group(2))))
    flags.setdefault(m.group(1), set()).add(m.group(3))
fn_order = []
arities = {}
for name, n in registered:
    if name not in arities:
        fn_order.append(name)
        arities[name] = set()
    arities[name].add(n)

c_sources = {p: read(p) for p in sorted(glob.glob("src/*.c"))}
all_c = "\n".join(c_sources.values())
vtabs = []
reg = re.search(r"int aa_vtab_register\(.*?\n\}", all_c, re.S)
for var in re.findall(r"register_one\([^,]+,[^,]+,\s*&(\w+)\)", reg.group(0) if reg else ""):
    d = re.search(r"\b" + var + r"\s*=\s*\{.*?\.name\s*=\s*\"(\w+)\"", all_c, re.S)
    if d:
        vtabs.append(d.group(1))
vtabs += re.findall(r'sqlite3_create_module_v2\(\s*db\s*,\s*"(\w+)"', all_c)
expected = fn_order + vtabs

report(len(fn_order) > 0 and len(vtabs) > 0,
       f"found {len(fn_order)} functions ({len(registered)} registrations) and "
       f"{len(vtabs)} virtual tables in the code")

ref = read("docs/reference.md")
entries = []  # (name, heading)
for n, line in prose_lines(ref):
    m = re.match(r"^###\s+`?([a-z_][a-z_0-9]*)", line)
    if line.startswith("### "):
        entries.append((m.group(1) if m else line, line, n))
names = [e[0] for e in entries]
report(not diff(expected, names),
       "docs/reference.md has a ### entry for every registered function and virtual table, and no other",
       diff(expected, names))
report(names == expected,
       "docs/reference.md's entries follow the registration order",
       [f"expected: {' '.join(expected)}", f"found:    {' '.join(names)}"])
bad = []
for name, line, n in entries:
    if name not in arities:
        continue
    shown = set()
    for args in re.findall(r"\b" + re.escape(name) + r"\(([^)]*)\)", line):
        shown.add(0 if not args.strip() else args.count(",") + 1)
    if shown != arities[name]:
        bad.append(f"reference.md:{n}: {name} shows arities {sorted(shown)}, "
                   f"registered {sorted(arities[name])}")
report(not bad, "every ### entry of a function shows each registered arity, and only those", bad)
# The summary table's flags column says what the registration says.
words = {"DIRECT": "direct-only", "INNOCUOUS": "innocuous", "PURE": "innocuous, deterministic"}
bad = []
summary = {}
for line in ref.split("\n"):
    m = re.match(r"^\|\s*\[`([a-z_]+)\(.*\|\s*([^|]+?)\s*\|\s*$", line)
    if m:
        summary[m.group(1)] = m.group(2)
for name in fn_order:
    want = ", ".join(sorted({words.get(f, f) for f in flags[name]}))
    if summary.get(name) != want:
        bad.append(f"{name}: the summary table says {summary.get(name)!r}, anonauth.c says {want!r}")
report(not bad, "docs/reference.md's summary table gives every function the flags it is registered with", bad)
dup = sorted({x for x in names if names.count(x) > 1})
report(not dup, "no function or table has two entries in docs/reference.md",
       [f"twice: {x}" for x in dup])

# ---- 2. configuration keys --------------------------------------------------
cfg = all_c  # keys[] lives in src/config.c today; found wherever it moves
kblock = re.search(r"\bkeys\[[A-Z_]*\]\s*=\s*\{(.*?)\n\};", cfg, re.S)
keys = re.findall(r'=\s*\{\s*"([a-z_.]+)"', kblock.group(1) if kblock else "")
documented = table_first_cells(read("docs/configuration.md"), "## All keys")
report(len(keys) > 0, f"found {len(keys)} configuration keys in src/config.c")
report(not diff(keys, documented),
       "docs/configuration.md's key table lists every key of src/config.c, and no other",
       diff(keys, documented))
dup = sorted({x for x in documented if documented.count(x) > 1})
report(not dup, "no key has two rows in docs/configuration.md", [f"twice: {x}" for x in dup])

# ---- 3. error codes ---------------------------------------------------------
err = all_c  # errcode_names[] lives in src/errors.c today
eblock = re.search(r"errcode_names\[[A-Z_]*\]\s*=\s*\{(.*?)\n\};", err, re.S)
codes = re.findall(r'=\s*"([a-z_]+)"', eblock.group(1) if eblock else "")
documented = table_first_cells(read("docs/errors.md"), "## Codes")
report(len(codes) > 0, f"found {len(codes)} error codes in src/errors.c")
report(not diff(codes, documented),
       "docs/errors.md's code table lists every error code of src/errors.c, and no other",
       diff(codes, documented))
dup = sorted({x for x in documented if documented.count(x) > 1})
report(not dup, "no code has two rows in docs/errors.md", [f"twice: {x}" for x in dup])

# ---- 4. make targets --------------------------------------------------------
targets = set()
makefiles = ["Makefile"] + re.findall(r"^include\s+(\S+)$", read("Makefile"), re.M)
for line in "\n".join(read(f) for f in makefiles).split("\n"):
    m = re.match(r"^([A-Za-z0-9_.-]+(?:\s+[A-Za-z0-9_.-]+)*)\s*:(?!=)", line)
    if m:
        targets.update(m.group(1).split())
mentioned = {}  # target -> first place
for page in pages:
    text = read(page)
    inside = False
    for n, line in enumerate(text.split("\n"), 1):
        if re.match(r"^\s*```", line):
            inside = not inside
            continue
        chunks = [line] if inside else re.findall(r"`([^`]+)`", line)
        for chunk in chunks:
            for m in re.finditer(r"(?:^|[\s;&|(])make((?:\s+[^\s#;&|)]+)*)", chunk):
                words = m.group(1).split()
                goals = [w for w in words if "=" not in w and not w.startswith("-")]
                if not words:
                    goals = ["all"]  # plain `make`: the default goal
                for g in goals:
                    mentioned.setdefault(g, f"{page}:{n}")
readme_targets = [t for t, where in mentioned.items() if where.startswith("README.md:")]
report(len(readme_targets) >= 5,
       f"README.md names {len(readme_targets)} make targets ({' '.join(sorted(readme_targets))})")
missing = [f"{where}: make {t}" for t, where in sorted(mentioned.items()) if t not in targets]
report(not missing, "every make target named in README.md and docs/*.md exists in the Makefile", missing)

# ---- 5. links between pages -------------------------------------------------
def slug(heading):
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)   # GitHub keeps letters, digits, _, -, space
    return s.replace(" ", "-")

anchors = {}
def anchors_of(path):
    if path not in anchors:
        found, seen = set(), {}
        text = read(path)
        for _, line in prose_lines(text):
            m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
            if m:
                s = slug(m.group(1))
                k = seen.get(s, 0)
                found.add(s if k == 0 else f"{s}-{k}")
                seen[s] = k + 1
            found.update(re.findall(r'<a\s+(?:id|name)="([^"]+)"', line))
        anchors[path] = found
    return anchors[path]

broken, links = [], 0
for page in pages:
    for n, line in prose_lines(read(page)):
        line = re.sub(r"`[^`]*`", "", line)
        for target in re.findall(r"\]\(([^)\s]+)\)", line):
            if re.match(r"^[a-z]+:", target):
                continue  # https:, mailto:
            links += 1
            path, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
            if not os.path.exists(dest):
                broken.append(f"{page}:{n}: {target}: no file {dest}")
            elif anchor and dest.endswith(".md") and anchor not in anchors_of(dest):
                broken.append(f"{page}:{n}: {target}: no heading #{anchor} in {dest}")
report(links > 0 and not broken,
       f"every relative link ({links}) in README.md and docs/*.md points at an existing file and heading",
       broken)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
