#!/usr/bin/env python3
"""Checks that no crate of the workspace has an import cycle between its top-level modules.

For each crate (a folder with Cargo.toml and src/lib.rs or src/main.rs), every top-level module
(`src/foo.rs` with its `src/foo/` children) is a node; a `crate::bar` path outside comments in
foo's code is an edge foo -> bar (a child naming its own parent is not). A cycle is a strongly
connected set of more than one module. Prints each crate's edges with -v; exits 1 on a cycle.

Usage: scripts/module-cycles.py [-v] [CRATE_DIR ...]   (default: every workspace member)
"""
import os
import re
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATH = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")


def members():
    with open(os.path.join(ROOT, "Cargo.toml"), "rb") as f:
        spec = tomllib.load(f)["workspace"]["members"]
    out = []
    for m in spec:
        if m.endswith("/*"):
            base = os.path.join(ROOT, m[:-2])
            out += [os.path.join(base, d) for d in sorted(os.listdir(base))]
        else:
            out.append(os.path.join(ROOT, m))
    return [d for d in out if os.path.isfile(os.path.join(d, "Cargo.toml"))]


def code(path):
    """The file's text without comments (line comments and doc comments)."""
    lines = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            stripped = line.lstrip()
            if stripped.startswith("//"):
                continue
            lines.append(line.split(" //", 1)[0])
    return "".join(lines)


def graph(src):
    nodes = {}
    for dirpath, _, files in os.walk(src):
        for name in files:
            if not name.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), src)
            top = rel.split(os.sep)[0]
            top = top[:-3] if top.endswith(".rs") else top
            if top in ("lib", "main"):
                continue
            nodes.setdefault(top, set()).update(
                m for m in PATH.findall(code(os.path.join(dirpath, name))) if m != top
            )
    return {n: {m for m in edges if m in nodes} for n, edges in nodes.items()}


def cycles(g):
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g[v]):
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
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def main(argv):
    verbose = "-v" in argv
    dirs = [a for a in argv if a != "-v"] or members()
    failed = False
    for d in dirs:
        src = os.path.join(d, "src")
        if not os.path.isdir(src):
            continue
        g = graph(src)
        name = os.path.relpath(d, ROOT)
        if verbose:
            for n in sorted(g):
                print(f"{name}: {n} -> {', '.join(sorted(g[n])) or '-'}")
        for c in cycles(g):
            failed = True
            print(f"{name}: import cycle between modules {', '.join(c)}", file=sys.stderr)
    if not failed:
        print(f"no import cycle between the modules of {len(dirs)} crates")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
