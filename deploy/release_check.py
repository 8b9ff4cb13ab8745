#!/usr/bin/env python3
"""Refuse to build a release image that is not reproducible (`make image` runs this first).

    python deploy/release_check.py --python-digest sha256:<64 hex> [--version 0.1.0]

Checks that the base image is given by a real digest (not the Dockerfile's placeholder), that
the version is the package's, and that the lock files agree with pyproject.toml: every runtime
dependency pinned, every pin inside pyproject's range, every pin hashed. Nothing is downloaded;
whether the lock is the newest resolution is `make lock`'s business.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "deploy" / "requirements.lock"
BUILD_LOCK = REPO / "deploy" / "build-requirements.lock"
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def pins(lock: Path) -> dict[str, tuple[Version, list[str]]]:
    """name -> (pinned version, sha256 hashes) of a `--generate-hashes` requirements file."""
    text = lock.read_text().replace("\\\n", " ")
    out: dict[str, tuple[Version, list[str]]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.match(r"([A-Za-z0-9._-]+)==([^\s;]+)", line)
        if m is None:
            raise ValueError(f"{lock.name}: not a pinned requirement: {line!r}")
        out[canonicalize_name(m.group(1))] = (Version(m.group(2)), re.findall(r"--hash=sha256:([0-9a-f]{64})", line))
    return out


def lock_problems(requirements: list[str], lock: Path) -> list[str]:
    """What is wrong between a list of requirements (pyproject's) and a lock file."""
    problems = []
    locked = pins(lock)
    for name, (_, hashes) in sorted(locked.items()):
        if not hashes:
            problems.append(f"{lock.name}: {name} has no hash")
    for text in requirements:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"python_version": "3.11", "sys_platform": "linux"}):
            continue
        name = canonicalize_name(req.name)
        if name not in locked:
            problems.append(f"{lock.name}: {req.name} (pyproject.toml: {text}) is not pinned; run `make lock`")
        elif not req.specifier.contains(locked[name][0], prereleases=True):
            problems.append(f"{lock.name}: {req.name}=={locked[name][0]} is outside pyproject.toml's {text}; "
                            "run `make lock`")
    return problems


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def all_lock_problems() -> list[str]:
    project = pyproject()
    return [*lock_problems(project["project"]["dependencies"], LOCK),
            *lock_problems(project["build-system"]["requires"], BUILD_LOCK)]


def package_version() -> str:
    m = re.search(r'^__version__\s*=\s*"([^"]+)"', (REPO / "cdc" / "__init__.py").read_text(), re.MULTILINE)
    assert m, "cdc/__init__.py has no __version__"
    return m.group(1)


def release_problems(python_digest: str, version: str | None) -> list[str]:
    problems = []
    if not DIGEST.fullmatch(python_digest):
        problems.append(f"--python-digest {python_digest!r} is not a sha256 digest: give the digest of the base image "
                        "you reviewed (docker buildx imagetools inspect python:3.11-slim-bookworm), never the placeholder")
    if version is not None and version != package_version():
        problems.append(f"--version {version} is not the package's version {package_version()} (cdc/__init__.py)")
    return problems + all_lock_problems()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python-digest", required=True, help="digest of the base image, sha256:...")
    parser.add_argument("--version", help="the image's version label; must be the package's")
    args = parser.parse_args(argv)
    problems = release_problems(args.python_digest, args.version)
    for p in problems:
        print(f"release check: {p}", file=sys.stderr)
    if problems:
        return 1
    print("release check: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
