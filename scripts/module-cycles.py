#!/usr/bin/env python3
"""Lists the import cycles between the top-level modules of src/.

A module is a file src/NAME.rs or a directory src/NAME/. An edge A -> B is any
`crate::B` path in A's files (use lines, grouped `use crate::{B, C}` lines and
paths written inline). Prints the edges and every strongly connected group of
more than one module; exits 1 if there is one.
"""
import pathlib
import re
import sys

src = pathlib.Path(__file__).resolve().parent.parent / "src"
edges = {}
for f in src.rglob("*.rs"):
    rel = f.relative_to(src)
    mod = rel.parts[0].removesuffix(".rs")
    if mod in ("main", "lib"):
        continue
    text = re.sub(r"//[^\n]*", "", f.read_text())
    targets = set(re.findall(r"\bcrate::([a-z_][a-z0-9_]*)", text))
    for group in re.findall(r"\bcrate::\{([^}]*)\}", text):
        targets |= {g.strip().split("::")[0] for g in group.split(",") if g.strip()}
    edges.setdefault(mod, set()).update(t for t in targets if t != mod)

for m in sorted(edges):
    print(f"{m} -> {', '.join(sorted(edges[m])) or '-'}")

index, low, stack, on, out, n = {}, {}, [], set(), [], [0]
def visit(v):
    index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
    for w in edges.get(v, ()):
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
        if len(comp) > 1:
            out.append(sorted(comp))
for v in sorted(edges):
    if v not in index:
        visit(v)
for c in out:
    print("cycle:", " <-> ".join(c))
print("no cycles" if not out else f"{len(out)} cycle group(s)")
sys.exit(1 if out else 0)
