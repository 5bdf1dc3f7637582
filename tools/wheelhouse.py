"""Rebuild released wheels from git history into a local wheelhouse (a flat wheel directory).

For each requested release (see tools/releases.py) the package directory at the release
commit is extracted with `git archive` into a temporary directory and built with
`uv build --wheel`. Builds are byte-reproducible: the build backend is pinned by
tools/build-constraints.txt (as it was at the release commit, when it existed there) and
SOURCE_DATE_EPOCH is the release commit's time. Wheels already present are skipped.

    uv run python tools/wheelhouse.py                                  # every release
    uv run python tools/wheelhouse.py --package tttv2-core --version 2.0.0
    uv run python tools/wheelhouse.py --for-model models/example       # what its uv.lock needs
    uv run python tools/wheelhouse.py --package tttv2-core --verify    # rebuild, compare hashes

--for-model reads models/NAME/uv.lock, checks that every workspace package in it comes from
the wheelhouse (never from PyPI), and builds exactly the versions it pins into the wheelhouse
directory the lock points at. Exit 1 on a failed build or a --verify mismatch, 2 on bad input.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from releases import Release, find_release, list_releases
from workspace import REPO_ROOT, ToolError, get_package, git, main_guard, packages

DEFAULT_OUT = REPO_ROOT / "wheelhouse"
CONSTRAINTS = "tools/build-constraints.txt"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wheel_prefix(name: str, version: str) -> str:
    return f"{name.replace('-', '_').lower()}-{version}-"


def existing_wheel(out: Path, name: str, version: str) -> Path | None:
    matches = sorted(out.glob(wheel_prefix(name, version) + "*.whl")) if out.is_dir() else []
    return matches[0] if matches else None


def _extract(repo_root: Path, commit: str, path: str, dest: Path) -> None:
    data = subprocess.run(
        ["git", "-C", str(repo_root), "archive", "--format=tar", commit, "--", path],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")


def build_wheel(repo_root: Path, release: Release, out: Path) -> Path:
    """Build `release` from git history into `out`; return the wheel's path."""
    rel = get_package(release.package, repo_root).rel(repo_root)
    with tempfile.TemporaryDirectory(prefix="wheelhouse-") as tmp_name:
        tmp = Path(tmp_name)
        _extract(repo_root, release.commit, rel, tmp / "src")
        constraints = tmp / "build-constraints.txt"
        at_release = git(repo_root, "show", f"{release.commit}:{CONSTRAINTS}", check=False)
        constraints.write_text(
            at_release + "\n" if at_release else (repo_root / CONSTRAINTS).read_text()
        )
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        env["SOURCE_DATE_EPOCH"] = str(release.timestamp)
        cmd = [
            "uv",
            "build",
            "--wheel",
            "--no-sources",
            "--build-constraints",
            str(constraints),
            "--out-dir",
            str(tmp / "dist"),
            str(tmp / "src" / rel),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            raise ToolError(
                f"uv build failed for {release.package} {release.version} at {release.commit[:12]}"
            )
        built = list((tmp / "dist").glob("*.whl"))
        if len(built) != 1 or not built[0].name.startswith(
            wheel_prefix(release.package, release.version)
        ):
            raise ToolError(
                f"expected one wheel of {release.package} {release.version}, got {[p.name for p in built]}"
            )
        out.mkdir(parents=True, exist_ok=True)
        staging = out / f".{built[0].name}.partial"
        shutil.copyfile(built[0], staging)
        final = out / built[0].name
        os.replace(staging, final)
        return final


def ensure(repo_root: Path, releases: list[Release], out: Path, verify: bool = False) -> list[Path]:
    """Make sure a wheel for each release is in `out` (missing ones are built in parallel);
    with verify, rebuild each and require identical bytes."""
    missing = list(
        dict.fromkeys(r for r in releases if existing_wheel(out, r.package, r.version) is None)
    )
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        built = dict(
            zip(missing, pool.map(lambda r: build_wheel(repo_root, r, out), missing), strict=True)
        )
    wheels = []
    for release in releases:
        wheel = existing_wheel(out, release.package, release.version)
        print(
            f"{'built  ' if release in built else 'present'} {wheel.name}  sha256:{sha256(wheel)}"
        )
        if verify:
            with tempfile.TemporaryDirectory(prefix="wheelhouse-verify-") as tmp:
                again = build_wheel(repo_root, release, Path(tmp))
                if sha256(again) != sha256(wheel):
                    raise ToolError(
                        f"{wheel.name} is not reproducible: rebuilt sha256 {sha256(again)}"
                    )
                print(f"verified {wheel.name}: rebuilt byte-identical")
        wheels.append(wheel)
    return wheels


def model_requirements(repo_root: Path, model_dir: Path) -> tuple[Path, list[tuple[str, str]]]:
    """(wheelhouse dir, [(package, version)]) that `model_dir`/uv.lock needs from the wheelhouse."""
    lock_path = model_dir / "uv.lock"
    if not lock_path.is_file():
        raise ToolError(f"{lock_path} not found: run `uv lock` in {model_dir}", code=2)
    lock = tomllib.loads(lock_path.read_text())
    ours = set(packages(repo_root))
    wheelhouse, needed = None, []
    for entry in lock.get("package", []):
        name, registry = entry["name"], entry.get("source", {}).get("registry")
        if name not in ours:
            continue
        if registry is None or "://" in registry:
            where = registry or entry.get("source")
            raise ToolError(f"{lock_path} takes {name} from {where}, not from the wheelhouse")
        path = (model_dir / registry).resolve()
        if wheelhouse not in (None, path):
            raise ToolError(f"{lock_path} uses two wheelhouses: {wheelhouse} and {path}")
        wheelhouse = path
        needed.append((name, entry["version"]))
    return wheelhouse or DEFAULT_OUT, needed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--package",
        action="append",
        default=[],
        metavar="NAME",
        help="package to build (repeatable; default: all workspace packages)",
    )
    parser.add_argument(
        "--version",
        action="append",
        default=[],
        metavar="V",
        help="released version to build (repeatable; default: all releases)",
    )
    parser.add_argument(
        "--for-model",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="build what DIR/uv.lock pins (repeatable)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help=f"wheelhouse directory (default: {DEFAULT_OUT.relative_to(REPO_ROOT)}/, "
        "or the one a model's lock points at)",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="rebuild every selected wheel and require identical bytes",
    )
    args = parser.parse_args()
    if args.for_model and (args.package or args.version):
        raise ToolError("--for-model cannot be combined with --package/--version", code=2)
    if args.for_model:
        for model_dir in args.for_model:
            wheelhouse, needed = model_requirements(REPO_ROOT, model_dir.resolve())
            chosen = [find_release(REPO_ROOT, name, version) for name, version in needed]
            ensure(REPO_ROOT, chosen, args.out or wheelhouse, args.verify)
        return 0
    names = args.package or list(packages(REPO_ROOT))
    chosen = []
    for name in names:
        get_package(name, REPO_ROOT)
        if args.version:
            chosen += [find_release(REPO_ROOT, name, v) for v in args.version]
        else:
            chosen += list_releases(REPO_ROOT, name)
    ensure(REPO_ROOT, chosen, args.out or DEFAULT_OUT, args.verify)
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
