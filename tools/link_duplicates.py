#!/usr/bin/env python3
"""Stores files that occur more than once in a tree once, in `TREE/blobs/<sha256>`, and puts
relative symbolic links to the blob where the copies were.

The bundled Shapes models share their VAE, text encoders and tokenizers, and the test fixtures
share encoders, tokenizers and a transformer; stored once, the repository stays small enough to
travel to a GPU machine (tests/integration/repo_size.rs holds it to its budget). This is how
Hugging Face's cache stores snapshots (links into a blob store), so every loader already reads
through links. A blob folder, rather than one of the copies, holds the bytes so that
regenerating or re-exporting any one model never pulls the bytes from under the others.

Run it after regenerating fixtures or exporting a bundled model (the generators replace links
with plain files; this puts the links back and removes blobs nothing points to any more):

    python3 tools/link_duplicates.py assets/models tests/fixtures

Each tree is handled on its own (a bundled model never points into tests/). Files below 4 KiB
stay as they are: a link saves nothing there and would make small configs harder to read.
"""

import argparse
import hashlib
import os
import sys
from pathlib import Path

MIN_BYTES = 4096
BLOBS = "blobs"


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def link_tree(root: Path, dry_run: bool) -> int:
    """Links duplicates under `root` to its blob store; returns the bytes the tree now saves."""
    blobs = root / BLOBS
    groups: dict[str, list[Path]] = {}
    for path in sorted(root.rglob("*")):
        if blobs in path.parents or path.is_dir():
            continue
        if path.is_symlink():
            target = path.resolve()
            if target.parent == blobs.resolve() and target.is_file():
                groups.setdefault(target.name, []).append(path)
            continue
        if path.stat().st_size >= MIN_BYTES:
            groups.setdefault(digest(path), []).append(path)

    saved = 0
    for sha, paths in sorted(groups.items()):
        blob = blobs / sha
        if len(paths) < 2 and not blob.exists():
            continue
        size = (blob if blob.exists() else paths[0]).stat().st_size
        saved += size * (len(paths) - 1)
        for path in paths:
            if path.is_symlink():
                continue
            print(f"{path} -> {BLOBS}/{sha[:12]}…")
            if dry_run:
                continue
            blobs.mkdir(exist_ok=True)
            if blob.exists():
                path.unlink()
            else:
                path.rename(blob)
            path.symlink_to(os.path.relpath(blob, path.parent))

    if blobs.is_dir():
        for blob in sorted(blobs.iterdir()):
            if blob.name not in groups:
                print(f"{blob}: nothing links to it any more, removed")
                if not dry_run:
                    blob.unlink()
    return saved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trees", nargs="+", type=Path)
    parser.add_argument("--dry-run", action="store_true", help="print what would be linked")
    args = parser.parse_args()
    total = 0
    for tree in args.trees:
        if not tree.is_dir():
            print(f"{tree}: not a folder", file=sys.stderr)
            return 2
        total += link_tree(tree, args.dry_run)
    print(f"stored once: {total / 2**20:.1f} MiB saved")
    return 0


if __name__ == "__main__":
    sys.exit(main())
