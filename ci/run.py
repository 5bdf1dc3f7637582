"""Run CI jobs locally with exactly the commands CI runs (declared in ci/matrix.toml).

    uv run python ci/run.py list [--steps]     # job names (and their commands)
    uv run python ci/run.py all                # every job, one after another
    uv run python ci/run.py tools model:example 'package:*'   # some jobs (glob patterns work)
    uv run python ci/run.py gen-workflow [--check]   # write/check .github/workflows/ci.yml

Each command is printed before it runs. At the end a table lists job, status and seconds, and
the last line is `N passed, N failed` (jobs). Exit 1 if any job failed, 2 on an unknown job.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import shlex
import subprocess
import sys
import time

from matrix import REPO_ROOT, Job, Step, load_jobs
from workflow import render

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "ci.yml"
NO_TESTS_COLLECTED = 5


def show(step: Step) -> str:
    cmd = shlex.join(step.run)
    return cmd if step.cwd == "." else f"(cd {step.cwd} && {cmd})"


def run_step(job: Job, step: Step) -> tuple[bool, str]:
    """Run one step; (ok, note)."""
    print(f"$ {show(step)}", flush=True)
    # A child `uv` must use the environment of its own project (models/NAME/.venv), not the
    # one `uv run` activated for this script.
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    rc = subprocess.run(list(step.run), cwd=REPO_ROOT / step.cwd, env=env, check=False).returncode
    if rc == 0:
        return True, ""
    if step.pytest and rc == NO_TESTS_COLLECTED:
        if job.may_be_empty:
            return True, "no tests (allowed)"
        return False, "no tests collected (exit 5); set may_be_empty = true if that is intended"
    return False, f"exit {rc}"


def run_job(job: Job) -> tuple[bool, float, str]:
    print(f"\n==> {job.name}", flush=True)
    start = time.monotonic()
    ok, notes = True, []
    for step in job.steps:
        if not ok and job.fail_fast:
            notes.append(f"skipped: {show(step)}")
            continue
        step_ok, note = run_step(job, step)
        if note:
            notes.append(f"{note}: {show(step)}")
        ok = ok and step_ok
    seconds = time.monotonic() - start
    for note in notes:
        print(f"    {job.name}: {note}", flush=True)
    return ok, seconds, "; ".join(notes)


def select(jobs: list[Job], patterns: list[str]) -> list[Job]:
    chosen: list[Job] = []
    for pattern in patterns:
        matched = [j for j in jobs if fnmatch.fnmatchcase(j.name, pattern)]
        if not matched:
            valid = ", ".join(j.name for j in jobs)
            print(f"error: unknown job {pattern!r}; jobs: {valid}", file=sys.stderr)
            sys.exit(2)
        chosen += [j for j in matched if j not in chosen]
    return chosen


def run_jobs(jobs: list[Job]) -> int:
    results = [(job, *run_job(job)) for job in jobs]
    width = max([len("job")] + [len(job.name) for job in jobs])
    print(f"\n{'job':<{width}}  status  seconds")
    for job, ok, seconds, _ in results:
        print(f"{job.name:<{width}}  {'pass' if ok else 'FAIL':<6}  {seconds:7.1f}")
    passed = sum(1 for _, ok, _, _ in results if ok)
    print(f"{passed} passed, {len(results) - passed} failed", flush=True)
    return 0 if passed == len(results) else 1


def gen_workflow(check: bool) -> int:
    text = render(load_jobs())
    if check:
        if not WORKFLOW.is_file() or WORKFLOW.read_text() != text:
            print(
                f"error: {WORKFLOW.relative_to(REPO_ROOT)} is out of date; run "
                "`uv run python ci/run.py gen-workflow`",
                file=sys.stderr,
            )
            return 1
        print(f"{WORKFLOW.relative_to(REPO_ROOT)} is up to date")
        return 0
    WORKFLOW.parent.mkdir(parents=True, exist_ok=True)
    WORKFLOW.write_text(text)
    print(f"wrote {WORKFLOW.relative_to(REPO_ROOT)}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "what",
        nargs="+",
        metavar="list|all|gen-workflow|JOB",
        help="a command, or job names / glob patterns to run",
    )
    parser.add_argument("--steps", action="store_true", help="with list: show each job's commands")
    parser.add_argument(
        "--check", action="store_true", help="with gen-workflow: only check it is up to date"
    )
    args = parser.parse_args()
    jobs = load_jobs()
    command = args.what[0]
    if command == "list" and len(args.what) == 1:
        for job in jobs:
            print(job.name)
            if args.steps:
                for step in job.steps:
                    print(f"    {show(step)}")
        return 0
    if command == "gen-workflow" and len(args.what) == 1:
        return gen_workflow(args.check)
    if command == "all" and len(args.what) == 1:
        return run_jobs(jobs)
    return run_jobs(select(jobs, args.what))


if __name__ == "__main__":
    sys.exit(main())
