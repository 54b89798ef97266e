#!/usr/bin/env python3
"""Structural rules the codebase keeps, checked in CI:

- no `.rs` file over 500 lines;
- no import circle among the files of a crate longer than three files (and none at all
  among the host's files);
- no NATS subject or control reply built by hand outside `interfaces/lattice`.

Prints every violation and exits non-zero when there is one.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_LINES = 500
MAX_CYCLE = 3
# Crates whose files may not import each other in any circle.
NO_CYCLES = {"host"}
SKIP_DIRS = {"target", ".git", "examples", "node_modules"}


def crates():
    """(crate dir, src dir) for every workspace crate."""
    out = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        if "Cargo.toml" in filenames and os.path.isdir(os.path.join(dirpath, "src")):
            out.append((dirpath, os.path.join(dirpath, "src")))
    return out


def module_path(src, path):
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return tuple(rel)


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line.split("//")[0] for line in text.splitlines())


USE_RE = re.compile(r"\b(crate|super|self)((?:::\w+)+)")
USE_GROUP_RE = re.compile(r"\buse\s+(crate|super|self)((?:::\w+)*)::\{([^;]*)\};", re.S)


def resolve(mods, current, is_dir_module, kind, rest):
    """The file a path like `crate::a::b::C` or `super::x` lands in."""
    parts = [p for p in rest.split("::") if p]
    if kind == "crate":
        base = []
    elif kind == "self":
        base = list(current) if is_dir_module else list(current[:-1]) + [current[-1]] if current else []
        base = list(current)
    else:  # super
        base = list(current[:-1])
        while parts and parts[0] == "super":
            parts.pop(0)
            base = base[:-1]
    full = base + parts
    # The longest prefix that is a module file.
    for n in range(len(full), -1, -1):
        if tuple(full[:n]) in mods:
            return mods[tuple(full[:n])]
    return None


def graph(src):
    files = {}
    for dirpath, _, filenames in os.walk(src):
        for f in filenames:
            if f.endswith(".rs"):
                p = os.path.join(dirpath, f)
                files[p] = module_path(src, p)
    mods = {m: p for p, m in files.items()}
    edges = {p: set() for p in files}
    for p, m in files.items():
        text = strip_comments(open(p, encoding="utf-8").read())
        is_dir = os.path.basename(p) in ("mod.rs", "lib.rs", "main.rs")
        cur = m if is_dir else m
        # `super` in foo.rs refers to the parent of foo; in foo/mod.rs also the parent of foo.
        refs = []
        for g in USE_GROUP_RE.finditer(text):
            kind, prefix, inner = g.group(1), g.group(2), g.group(3)
            for item in re.split(r"[,{}]", inner):
                item = item.strip().split(" as ")[0].strip()
                if item and item != "self" and re.match(r"^\w+(::\w+)*", item):
                    refs.append((kind, prefix + "::" + re.match(r"^\w+(::\w+)*", item).group(0)))
        for u in USE_RE.finditer(text):
            refs.append((u.group(1), u.group(2)))
        # Paths through the file's own child modules (`mod serve;` ... `serve::start`).
        for child in re.findall(r"\bmod\s+(\w+)\s*;", text):
            for u in re.finditer(r"(?<![\w:])" + child + r"((?:::\w+)+)", text):
                refs.append(("self", "::" + child + u.group(1)))
            if re.search(r"\buse\s+" + child + r"\s*::", text) or re.search(r"pub\s+use\s+" + child + r"\b", text):
                refs.append(("self", "::" + child))
        for kind, rest in refs:
            target = resolve(mods, cur, is_dir, kind, rest)
            if target and target != p:
                edges[p].add(target)
    return edges


def sccs(edges):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    for v in edges:
        if v not in index:
            visit(v)
    return [c for c in out if len(c) > 1]


SUBJECT_RE = re.compile(r'"(trellis\.(ctl|evt|rpc)\.|\$KV\.|KV_trellis|trellis_(links|config|apps)_)')
REPLY_RE = re.compile(r'\{\\?"ok\\?"|"ok"\s*:|Reply::(ok|error)\(')


def main():
    problems = []
    for crate_dir, src in crates():
        rel_crate = os.path.relpath(crate_dir, ROOT)
        for dirpath, _, filenames in os.walk(crate_dir):
            if any(part in SKIP_DIRS for part in os.path.relpath(dirpath, ROOT).split(os.sep)):
                continue
            for f in filenames:
                if not f.endswith(".rs"):
                    continue
                p = os.path.join(dirpath, f)
                rel = os.path.relpath(p, ROOT)
                text = open(p, encoding="utf-8").read()
                n = text.count("\n")
                if n > MAX_LINES:
                    problems.append(f"{rel}: {n} lines (at most {MAX_LINES})")
                if not rel.startswith("interfaces/lattice/") and "/tests/" not in "/" + rel and "/benches/" not in rel:
                    code = strip_comments(text)
                    # Unit tests may spell out what they expect.
                    code = code.split("#[cfg(test)]")[0]
                    for m in SUBJECT_RE.finditer(code):
                        line = code[: m.start()].count("\n") + 1
                        problems.append(f"{rel}:{line}: a subject or bucket name built outside trellis-lattice")
                    for m in REPLY_RE.finditer(code):
                        line = code[: m.start()].count("\n") + 1
                        problems.append(f"{rel}:{line}: a control reply built outside trellis-lattice")
        for comp in sccs(graph(src)):
            names = sorted(os.path.relpath(p, ROOT) for p in comp)
            limit = 1 if rel_crate in NO_CYCLES else MAX_CYCLE
            if len(comp) > limit:
                problems.append(f"import circle of {len(comp)} files: {', '.join(names)}")
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} structural problem(s)", file=sys.stderr)
        return 1
    print("structure: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
