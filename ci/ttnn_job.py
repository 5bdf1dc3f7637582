"""The ttnn job: TT block-float packing checked bit for bit against ttnn's host packer.

ttnn (tt-metal's Python package) has wheels for CPython 3.10 and 3.12 only, pins numpy < 2
and weighs ~1 GB, so it never enters the workspace environment. This script:

1. finds a CPython 3.12 on the machine (``$PYENV_ROOT/versions/3.12*`` or ``~/.pyenv``
   likewise, then ``python3.12`` on PATH; ``--python`` overrides) -- nothing is downloaded;
2. creates ``.venv-ttnn`` with it and installs packages/tttv2-hw/tests_ttnn/requirements.txt
   plus tttv2-core and tttv2-hw from this checkout (through uv, so uv's cache serves
   repeat runs);
3. runs ``pytest packages/tttv2-hw/tests_ttnn`` with ``TT_METAL_MOCK_CLUSTER_DESC_PATH``
   set to the mock Wormhole N150 descriptor shipped beside the tests (ttnn's host
   conversions need a cluster; no device op runs).

    uv run python ci/ttnn_job.py [--python PATH] [pytest args...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TESTS = REPO_ROOT / "packages" / "tttv2-hw" / "tests_ttnn"
VENV = REPO_ROOT / ".venv-ttnn"
DESCRIPTOR = TESTS / "wormhole_N150.yaml"
WANTED = (3, 12)


def candidates() -> tuple[list[Path], list[str]]:
    """Interpreters to try, and a description of every place searched."""
    roots = []
    if os.environ.get("PYENV_ROOT"):
        roots.append(Path(os.environ["PYENV_ROOT"]))
    roots.append(Path.home() / ".pyenv")
    found: list[Path] = []
    searched: list[str] = []
    tag = f"{WANTED[0]}.{WANTED[1]}"
    for root in roots:
        versions = root / "versions"
        searched.append(f"{versions}/{tag}*/bin/python{tag}")
        found += sorted(versions.glob(f"{tag}*/bin/python{tag}"), reverse=True)
    searched.append(f"python{tag} on PATH")
    on_path = shutil.which(f"python{tag}")
    if on_path:
        found.append(Path(on_path))
    return found, searched


def is_wanted(python: Path) -> bool:
    try:
        out = subprocess.run(
            [str(python), "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout.split()
    except OSError:
        return False
    return tuple(int(v) for v in out) == WANTED


def find_python(explicit: str | None) -> Path:
    if explicit:
        path = Path(explicit)
        if not is_wanted(path):
            sys.exit(f"error: --python {explicit} is not a CPython {WANTED[0]}.{WANTED[1]}")
        return path
    found, searched = candidates()
    for python in found:
        if is_wanted(python):
            return python
    sys.exit(
        f"error: no Python {WANTED[0]}.{WANTED[1]} found for ttnn (searched "
        + ", ".join(searched)
        + "); install one or pass --python PATH"
    )


def run(cmd: list[str], **kw) -> None:
    print("$ " + " ".join(cmd), flush=True)
    rc = subprocess.run(cmd, check=False, **kw).returncode
    if rc:
        sys.exit(rc)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--python", help="the CPython 3.12 to build the environment with")
    parser.add_argument(
        "--torch-index",
        help="an extra index holding torch's CPU-only build (~200 MB instead of the ~3 GB CUDA "
        "build the package registry serves); by default torch comes from the registry (cached by uv)",
    )
    args, pytest_args = parser.parse_known_args()
    python = find_python(args.python)
    uv = shutil.which("uv") or sys.exit("error: uv not on PATH")
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    # --no-config: the workspace's [tool.uv] settings (overrides for the 3.11 environment)
    # are not this environment's.
    run([uv, "venv", "--no-config", "--allow-existing", "-p", str(python), str(VENV)], env=env)
    venv_python = VENV / "bin" / "python"
    install = [
        uv,
        "pip",
        "install",
        "--no-config",
        "--python",
        str(venv_python),
        "-r",
        str(TESTS / "requirements.txt"),
        str(REPO_ROOT / "packages" / "tttv2-core"),
        str(REPO_ROOT / "packages" / "tttv2-hw"),
        "--reinstall-package",
        "tttv2-core",
        "--reinstall-package",
        "tttv2-hw",
    ]
    if args.torch_index:
        install += ["--extra-index-url", args.torch_index, "--index-strategy", "unsafe-best-match"]
    run(install, env=env)
    env["TT_METAL_MOCK_CLUSTER_DESC_PATH"] = str(DESCRIPTOR)
    # From the tests folder: the workspace's pytest settings (pythonpath tests/shared) and
    # the source tree's tttv2 (the installed copy is what is tested) stay out.
    cmd = [str(venv_python), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(TESTS)]
    print("$ " + " ".join(cmd), flush=True)
    return subprocess.run(cmd + pytest_args, cwd=TESTS, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
