#!/usr/bin/env bash
# Prints the dependency graph between archgate's top-level modules (src/X.rs
# and src/X/**), read from the `crate::` paths in the code (comments left
# out), and fails when the graph has a cycle or when `clap` is used outside
# src/cli — the two layering rules of the redesign (issue 19). Each problem is
# named with the files and lines that make it.
#
#   scripts/deps.sh          the graph, then the problems; exit 1 if any
#   scripts/deps.sh --dot    the graph in Graphviz dot, nothing checked
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 - "$@" <<'PY'
import os, re, sys

SRC = "src"
# Names lib.rs re-exports from a module, as written there.
REEXPORTS = {"Error": "error", "ErrorKind": "error", "Result": "error"}

lib = open(os.path.join(SRC, "lib.rs")).read()
modules = set(re.findall(r"^\s*pub\s+mod\s+(\w+)\s*;", lib, re.M))

def code_lines(path):
    """(number, line) with // comments removed (string literals are rare enough here)."""
    for n, line in enumerate(open(path, encoding="utf-8"), 1):
        yield n, re.sub(r"//.*", "", line)

def names_at(text, i):
    """Top-level module names of the `crate::` path starting at `i` (a group's too)."""
    i += len("crate::")
    if not text.startswith("{", i):
        m = re.match(r"\w+", text[i:])
        return [m.group(0)] if m else []
    names, depth, item = [], 0, ""
    for c in text[i:]:
        if c == "{":
            depth += 1
            if depth == 1:
                continue
        elif c == "}":
            depth -= 1
            if depth == 0:
                break
        if depth == 1 and c == ",":
            names.append(item)
            item = ""
        else:
            item += c
    names.append(item)
    return [m.group(1) for m in (re.match(r"\s*(\w+)", n) for n in names) if m]

edges = {}  # (from, to) -> [file:line]
clap_uses = []
for root, _, files in os.walk(SRC):
    for f in sorted(files):
        if not f.endswith(".rs"):
            continue
        path = os.path.join(root, f)
        rel = os.path.relpath(path, SRC).split(os.sep)
        if rel in (["lib.rs"], ["main.rs"]):
            continue
        here = rel[0][:-3] if len(rel) == 1 else rel[0]
        lines = list(code_lines(path))
        # Join the file so a `use crate::{...}` group spanning lines is read whole;
        # keep a map from offsets back to line numbers for the messages.
        text, starts = "", []
        for n, line in lines:
            starts.append((len(text), n))
            text += line
        def line_at(offset):
            n = 1
            for start, num in starts:
                if start > offset:
                    break
                n = num
            return n
        for m in re.finditer(r"(?<![\w:])crate::", text):
            for name in names_at(text, m.start()):
                target = REEXPORTS.get(name, name)
                if target in modules and target != here:
                    edges.setdefault((here, target), []).append(f"{path}:{line_at(m.start())}")
        if here != "cli":
            for n, line in lines:
                if re.search(r"\bclap\b", line):
                    clap_uses.append(f"{path}:{n}: {line.strip()}")

if "--dot" in sys.argv[1:]:
    print("digraph archgate {")
    for (a, b) in sorted(edges):
        print(f'  "{a}" -> "{b}";')
    print("}")
    sys.exit(0)

graph = {}
for (a, b) in edges:
    graph.setdefault(a, set()).add(b)
print("module dependencies (from -> to, uses):")
for a in sorted(modules):
    deps = sorted(graph.get(a, ()))
    print(f"  {a:<10} -> " + (", ".join(f"{b} ({len(edges[(a, b)])})" for b in deps) or "-"))

# Strongly connected components (Tarjan): every one with more than a module is a cycle.
index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
def visit(v):
    index[v] = low[v] = counter[0]; counter[0] += 1
    stack.append(v); on.add(v)
    for w in sorted(graph.get(v, ())):
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v:
                break
        sccs.append(sorted(comp))
sys.setrecursionlimit(10000)
for v in sorted(modules):
    if v not in index:
        visit(v)

problems = 0
for comp in sccs:
    if len(comp) < 2:
        continue
    problems += 1
    print(f"\nCYCLE between {', '.join(comp)}; the edges inside it:")
    for (a, b), where in sorted(edges.items()):
        if a in comp and b in comp:
            print(f"  {a} -> {b}: {', '.join(where[:5])}" + (f" (+{len(where) - 5} more)" if len(where) > 5 else ""))
if clap_uses:
    problems += 1
    print("\nCLAP outside src/cli (only the CLI may know clap):")
    for u in clap_uses:
        print(f"  {u}")
if problems:
    print(f"\n{problems} problem(s)")
    sys.exit(1)
print("\nno cycle between top-level modules; clap only in src/cli")
PY
