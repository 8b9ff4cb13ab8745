"""deploy/Dockerfile: a reproducible image, checked without a Docker engine.

No image can be built here (no engine, no registry). What can be checked: the Dockerfile's
structure (a build stage, the locks before the code, hashes required, the package without its
dependencies, no pip in the final stage, the base image by digest), the lock files against
pyproject.toml, the release check, and the build stage's own RUN lines, run as they are (paths
moved to a temporary directory) in fresh virtualenvs of this machine's Python 3.11: the same
wheels, the same hashes, the same commands as the image's build.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "Dockerfile"
sys.path.insert(0, str(REPO / "deploy"))
import release_check  # noqa: E402 - deploy/ is not a package

PLACEHOLDER = re.search(r"^ARG PYTHON_DIGEST=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE).group(1)  # type: ignore[union-attr]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = "\n".join(line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#"))
    text = re.sub(r"\\\n", " ", text)
    out = []
    for line in text.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


def stages() -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for ins in instructions():
        if ins[0] == "FROM":
            out.append([])
        if out:
            out[-1].append(ins)
    return out


def test_the_dockerfile_builds_in_two_stages_from_a_digest() -> None:
    build, final = stages()
    assert build[0] == ("FROM", "${PYTHON_IMAGE}@${PYTHON_DIGEST} AS build")
    assert final[0] == ("FROM", "${PYTHON_IMAGE}@${PYTHON_DIGEST}")
    assert not release_check.DIGEST.fullmatch(PLACEHOLDER), "the default must not be a pullable digest"

    copies = [args for word, args in build if word == "COPY"]
    runs = [args for word, args in build if word == "RUN"]
    lock_copy = next(i for i, c in enumerate(copies) if "deploy/requirements.lock" in c)
    code_copy = next(i for i, c in enumerate(copies) if c.startswith("cdc "))
    assert lock_copy < code_copy, "the lock is copied before the code (dependency layers are cached)"
    install_deps = next(r for r in runs if "-r deploy/requirements.lock" in r)
    assert "--require-hashes" in install_deps and "--only-binary=:all:" in install_deps
    assert "-r deploy/build-requirements.lock" in runs[0] and "--require-hashes" in runs[0]
    assert "venv --without-pip /opt/wpcdc" in install_deps
    install_pkg = runs[-1]
    assert "--no-deps" in install_pkg and "--no-index" in install_pkg and "--no-build-isolation" in install_pkg
    assert "[dev]" not in " ".join(runs)

    # The final stage: no pip, no installs, only the runtime virtualenv from the build stage.
    final_runs = [args for word, args in final if word == "RUN"]
    assert all("install" not in r.replace("uninstall", "") for r in final_runs)
    assert any("pip uninstall --yes" in r and "setuptools" in r and "wheel" in r for r in final_runs)
    assert ("COPY", "--from=build /opt/wpcdc /opt/wpcdc") in final
    assert ("USER", "10001:10001") in final and ("ENTRYPOINT", '["wpcdc"]') in final
    assert any(word == "ENV" and "PATH=/opt/wpcdc/bin:$PATH" in args for word, args in final)
    ignored = (REPO / ".dockerignore").read_text().split()
    assert "!deploy/requirements.lock" in ignored and "!deploy/build-requirements.lock" in ignored


def test_the_locks_pin_what_pyproject_asks_for() -> None:
    assert release_check.all_lock_problems() == []
    locked = release_check.pins(release_check.LOCK)
    # Each pin is hashed; the extras of a dependency are pinned too (aiokafka's codecs: cramjam).
    for text in release_check.pyproject()["project"]["dependencies"]:
        req = Requirement(text)
        for extra in req.extras:
            for dep in importlib.metadata.requires(req.name) or []:
                dep_req = Requirement(dep)
                if dep_req.marker is not None and dep_req.marker.evaluate({"extra": extra}):
                    assert canonicalize_name(dep_req.name) in locked, f"{req.name}[{extra}] needs {dep_req.name}"
    assert "cramjam" in locked
    assert "setuptools" in release_check.pins(release_check.BUILD_LOCK)


def test_a_lock_that_drifted_from_pyproject_is_reported(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text(release_check.LOCK.read_text().replace("click==", "click-old==", 1))
    assert any("click" in p and "not pinned" in p for p in release_check.lock_problems(["click>=8.1,<9"], lock))
    lock.write_text("click==7.0 \\\n    --hash=sha256:" + "ab" * 32 + "\n")
    assert any("outside" in p for p in release_check.lock_problems(["click>=8.1,<9"], lock))
    lock.write_text("click==8.1.0\n")
    assert any("no hash" in p for p in release_check.lock_problems(["click>=8.1,<9"], lock))


def test_the_release_check_refuses_the_placeholder_digest(capsys: pytest.CaptureFixture[str]) -> None:
    assert release_check.main(["--python-digest", PLACEHOLDER]) == 1
    assert "not a sha256 digest" in capsys.readouterr().err
    assert release_check.main(["--python-digest", "sha256:" + "0" * 64, "--version", "0.0.0-other"]) == 1
    assert "not the package's version" in capsys.readouterr().err
    # A well-formed digest (this one is made up, for the test only) and the package's version.
    assert release_check.main(["--python-digest", "sha256:" + "0" * 64,
                               "--version", release_check.package_version()]) == 0


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_build_stage_runs_in_a_fresh_virtualenv(tmp_path: Path) -> None:
    """The build stage's RUN lines as written, /opt and /tmp moved under tmp_path, in a copy of
    the build context: hashed wheels from the lock (pip refuses anything unpinned), the package
    with --no-deps, `pip check`, `wpcdc --version`. Downloads the wheels from PyPI."""
    if sys.version_info[:2] != (3, 11) and shutil.which("python3.11") is None:
        pytest.skip("the image runs Python 3.11; this machine has none")
    python = sys.executable if sys.version_info[:2] == (3, 11) else shutil.which("python3.11")
    src = tmp_path / "src"
    (src / "deploy").mkdir(parents=True)
    shutil.copy(REPO / "pyproject.toml", src)
    shutil.copytree(REPO / "cdc", src / "cdc", ignore=shutil.ignore_patterns("__pycache__"))
    for lock in ("requirements.lock", "build-requirements.lock"):
        shutil.copy(REPO / "deploy" / lock, src / "deploy")
    build, _ = stages()
    for _, command in (ins for ins in build if ins[0] == "RUN"):
        command = command.replace("/opt/", f"{tmp_path}/opt/").replace("/tmp/dist", f"{tmp_path}/dist")
        command = re.sub(r"(^|&& )python ", rf"\g<1>{python} ", command)
        result = subprocess.run(["bash", "-ec", command], cwd=src, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{command}\n{result.stdout}{result.stderr}"
    runtime = tmp_path / "opt" / "wpcdc"
    version = subprocess.run([runtime / "bin" / "wpcdc", "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"wpcdc, version {release_check.package_version()}"
    # No installer or build tool in the runtime virtualenv.
    for module in ("pip", "setuptools", "wheel"):
        probe = subprocess.run([runtime / "bin" / "python", "-c", f"import {module}"], capture_output=True)
        assert probe.returncode != 0, f"{module} is in the runtime"
