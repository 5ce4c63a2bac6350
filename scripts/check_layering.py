#!/usr/bin/env python3
"""Checks the dependency rule of include/p4lm/ (docs/architecture.md, "Layers").

Every header includes only headers of its own folder and of the folders below it, in this order
(folders on one line form one layer and may include each other):

    core
    io
    backend ops        the op list and its per-backend implementations
    nn
    dist               data parallelism over MPI (a single process without it)
    text
    cf
    data
    model
    eval
    train
    reward
    rl
    pipeline

The umbrella headers (p4lm.hpp, cuda.hpp, version.hpp) may include anything. A `detail/` header is
included only from its own folder (ops/detail/ from ops/). p4lm.hpp includes every public CPU header
(all but detail/ and the nvcc-only backend/cuda/). Prints every violation as
`file:line: <folder> includes <header>` and exits 1 if there is one.

    python3 scripts/check_layering.py [include-root]
"""
import pathlib
import re
import sys

LAYERS = [["core"], ["io"], ["backend", "ops"], ["nn"], ["dist"], ["text"], ["cf"], ["data"],
          ["model"], ["eval"], ["train"], ["reward"], ["rl"], ["pipeline"]]
RANK = {folder: i for i, layer in enumerate(LAYERS) for folder in layer}
INCLUDE = re.compile(r'^\s*#\s*include\s+[<"]p4lm/([^">]+)[">]')


def main() -> int:
    root = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else \
        pathlib.Path(__file__).resolve().parent.parent / "include"
    base = root / "p4lm"
    problems = []
    for header in sorted(base.rglob("*")):
        if header.suffix not in (".hpp", ".cuh", ".h") or header.parent == base:
            continue
        rel = header.relative_to(base)
        folder = rel.parts[0]
        if folder not in RANK:
            problems.append(f"{header}:1: folder '{folder}' is not in the layer list of {__file__}")
            continue
        for number, line in enumerate(header.read_text(encoding="utf-8").splitlines(), 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            target = pathlib.PurePosixPath(m.group(1))
            if len(target.parts) < 2:  # p4lm/p4lm.hpp from inside the library
                problems.append(f"{header}:{number}: {folder}/ includes the umbrella header {target}")
                continue
            to = target.parts[0]
            if to not in RANK:
                problems.append(f"{header}:{number}: {folder}/ includes {target} (unknown folder)")
            elif RANK[to] > RANK[folder]:
                problems.append(f"{header}:{number}: {folder}/ includes {target}, a higher layer")
            if "detail" in target.parts[1:-1]:
                owner = pathlib.PurePosixPath(*target.parts[:target.parts.index("detail")])
                mine = pathlib.PurePosixPath(*rel.parts[:len(owner.parts)])
                if mine != owner:
                    problems.append(f"{header}:{number}: {target} is internal to {owner}/")
    umbrella = base / "p4lm.hpp"
    included = {m.group(1) for line in umbrella.read_text(encoding="utf-8").splitlines()
                if (m := INCLUDE.match(line))}
    for header in sorted(base.rglob("*.hpp")):
        rel = header.relative_to(base).as_posix()
        if header.parent == base or "/detail/" in f"/{rel}" or rel.startswith("backend/cuda/"):
            continue
        if rel not in included:
            problems.append(f"{umbrella}:1: p4lm.hpp does not include the public header {rel}")
    for p in problems:
        print(p)
    if problems:
        print(f"check_layering: {len(problems)} violation(s) of the rule in docs/architecture.md")
        return 1
    print(f"check_layering: {sum(1 for _ in base.rglob('*.hpp'))} headers follow the layer order")
    return 0


if __name__ == "__main__":
    sys.exit(main())
