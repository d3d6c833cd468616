"""Check a built one-folder app: print its size, fail past the limit or with the ML stack inside.

Usage: python scripts/check_package.py dist/tunedeck [--limit-mb 300]

The ML stack is looked for three ways: a folder or a .dist-info of that name anywhere in the
build, a shared library named after it, and a module of that name inside the executables'
PYZ archives (where pure-Python modules live).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

FORBIDDEN = ("torch", "transformers", "trl", "peft", "datasets", "accelerate")


def folder_size(folder: Path) -> int:
    """Bytes of the files in ``folder`` (links counted once, as links)."""
    return sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def forbidden_files(folder: Path) -> list[str]:
    """Packages land at the top of the folder or of its _internal/ (resources/datasets/ is the
    app's own demo data, not the library); libraries and metadata anywhere."""
    found = []
    tops = [p for top in (folder, folder / "_internal") if top.is_dir() for p in top.iterdir()]
    libraries = [p for p in folder.rglob("*") if ".so" in p.name or p.suffix in (".dll", ".dylib")]
    for path in tops + libraries:
        name = path.name.lower()
        stem = name.split("-")[0] if name.endswith(".dist-info") else name.split(".")[0]
        if stem in FORBIDDEN or name.startswith(("libtorch", "libc10")):
            found.append(str(path.relative_to(folder)))
    return found


def forbidden_modules(folder: Path) -> list[str]:
    executables = [p for p in folder.iterdir() if p.is_file() and p.stat().st_mode & 0o111]
    archives = list(folder.rglob("*.pyz"))
    if not executables and not archives:
        return []  # nothing PyInstaller wrote: no need for PyInstaller to read it
    # the build's environment has PyInstaller; `make test`'s need not
    from PyInstaller.archive.readers import CArchiveReader, ZlibArchiveReader

    found = []
    for exe in executables:
        try:
            archive = CArchiveReader(str(exe))
        except Exception:
            continue  # not a PyInstaller executable
        for name, entry in archive.toc.items():
            if entry[-1] != "z":  # 'z' is a PYZ
                continue
            pyz = archive.open_embedded_archive(name)
            assert isinstance(pyz, ZlibArchiveReader)
            for module in pyz.toc:
                if module.split(".")[0] in FORBIDDEN:
                    found.append(f"{exe.name}: {module}")
    # one-folder builds keep the PYZ beside the executables in some versions
    for pyz_path in archives:
        for module in ZlibArchiveReader(str(pyz_path)).toc:
            if module.split(".")[0] in FORBIDDEN:
                found.append(f"{pyz_path.name}: {module}")
    return sorted(set(found))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--limit-mb", type=float, default=300.0)
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        print(f"error: {args.folder} is not a folder (build it with make package)")
        return 2
    size_mb = folder_size(args.folder) / 1e6
    print(f"folder {args.folder}: {size_mb:.1f} MB (limit {args.limit_mb:g} MB)")
    problems = []
    if size_mb > args.limit_mb:
        problems.append(f"the folder is {size_mb:.1f} MB, over the {args.limit_mb:g} MB limit")
    for item in forbidden_files(args.folder) + forbidden_modules(args.folder):
        problems.append(f"ML stack inside the build: {item}")
    for problem in problems:
        print(f"error: {problem}")
    if not problems:
        print(f"no {', '.join(FORBIDDEN)} inside")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
