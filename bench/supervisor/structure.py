#!/usr/bin/env python3
"""The supervisor's structure, for issue 14: which of its files call each other in a cycle (from the
symbols each object defines and uses: `nm`), and how long each main() is.
    bench/supervisor/structure.py [BUILD_DIR] [SOURCE_DIR]"""
import glob
import os
import re
import subprocess
import sys


def objects(build):
    """The supervisor's objects in a CMake build dir, or every .o of a plain directory."""
    if glob.glob(os.path.join(build, "*.o")):
        return {os.path.basename(o)[:-2]: o for o in glob.glob(os.path.join(build, "*.o"))}
    objs = glob.glob(os.path.join(build, "supervisor", "CMakeFiles", "xtsupervisor_rt.dir", "*.o"))
    objs += glob.glob(os.path.join(build, "supervisor", "CMakeFiles", "xtsupervisor_manifest.dir", "*.o"))
    objs += glob.glob(os.path.join(build, "supervisor", "CMakeFiles", "xtask-supervisor.dir", "*.o"))
    return {os.path.basename(o).split(".")[0]: o for o in objs}


def graph(objs):
    defs, uses = {}, {}
    for name, path in objs.items():
        out = subprocess.run(["nm", path], capture_output=True, text=True, check=True).stdout
        uses[name] = set()
        for ln in out.splitlines():
            f = ln.split()
            if len(f) == 3 and f[1] in "TDBR":
                defs[f[2]] = name
            elif len(f) == 2 and f[0] == "U":
                uses[name].add(f[1])
    return {n: sorted({defs[s] for s in u if s in defs and defs[s] != n}) for n, u in uses.items()}


def sccs(g):
    """Tarjan: the strongly connected components with more than one file (the cycles)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, []):
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

    sys.setrecursionlimit(10000)
    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def mains(src):
    res = []
    for path in sorted(glob.glob(os.path.join(src, "supervisor", "**", "*.c"), recursive=True)):
        lines = open(path, errors="replace").read().split("\n")
        for i, ln in enumerate(lines):
            if re.match(r"^(int|static int) (main|sv_https_probe_main|sv_run)\(", ln):
                j = i
                while j < len(lines) and lines[j] != "}":
                    j += 1
                res.append((os.path.relpath(path, src), ln.split("(")[0].split()[-1], j - i + 1))
    return res


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    src = sys.argv[2] if len(sys.argv) > 2 else "."
    g = graph(objects(build))
    cyc = sccs(g)
    print(f"files: {len(g)}; file-level call cycles (strongly connected sets): {len(cyc)}")
    for c in cyc:
        print("  cycle: " + " <-> ".join(c))
    for path, fn, n in mains(src):
        print(f"{path}: {fn}() {n} lines")


if __name__ == "__main__":
    main()
