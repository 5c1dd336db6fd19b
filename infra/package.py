"""The Lambda archive: handlers/, schema/, the ddbsync packages they import, and their runtime dependencies.

Dependencies come from pyproject.toml (boto3 is left out: the Lambda runtime has it) as manylinux
wheels for the function's architecture and Python version, installed once per requirement set into
a cache under build/. The zip is deterministic (sorted entries, fixed times and modes), so an
unchanged tree gives the same hash and `pulumi up` does not redeploy the functions.
"""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# ddbsync/exports: the export reader behind handlers.backfill.
SOURCES = (
    "handlers",
    "schema",
    "ddbsync/__init__.py",
    "ddbsync/core",
    "ddbsync/streams",
    "ddbsync/exports",
    "alembic.ini",
)
PROVIDED_BY_RUNTIME = {"boto3", "botocore"}
PLATFORMS = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class LambdaArchive:
    path: Path
    sha256_base64: str  # what Lambda reports as CodeSha256


def runtime_requirements(root: Path = ROOT) -> list[str]:
    """The project's own dependencies, less what the Lambda runtime provides."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    return sorted(
        r for r in project["dependencies"] if re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0] not in PROVIDED_BY_RUNTIME
    )


def _dependencies(requirements: list[str], architecture: str, python_version: str, cache: Path) -> Path:
    key = hashlib.sha256("\n".join([architecture, python_version, *requirements]).encode()).hexdigest()[:16]
    target = cache / f"lambda-deps-{key}"
    if (target / ".complete").exists():
        return target
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
            "--target",
            str(target),
            "--platform",
            PLATFORMS[architecture],
            "--implementation",
            "cp",
            "--python-version",
            python_version,
            "--only-binary=:all:",
            "--upgrade",
            *requirements,
        ],
        check=True,
    )
    (target / ".complete").touch()
    return target


def _files(base: Path, entry: str) -> list[tuple[str, Path]]:
    path = base / entry
    candidates = [path] if path.is_file() else sorted(path.rglob("*"))
    return [
        (p.relative_to(base).as_posix(), p)
        for p in candidates
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc" and p.name != ".complete"
    ]


def build_lambda_archive(
    architecture: str = "arm64", python_version: str = "3.12", root: Path = ROOT, cache: Path | None = None
) -> LambdaArchive:
    """Build (or reuse) the archive for the given architecture; same tree, same bytes."""
    cache = cache or root / "build"
    cache.mkdir(parents=True, exist_ok=True)
    deps = _dependencies(runtime_requirements(root), architecture, python_version, cache)
    entries = dict(_files(deps, "."))
    for source in SOURCES:
        entries.update(_files(root, source))
    digest = hashlib.sha256()
    for name in sorted(entries):
        digest.update(name.encode() + b"\0" + entries[name].read_bytes())
    path = cache / f"lambda-{architecture}-{digest.hexdigest()[:16]}.zip"
    if not path.exists():
        partial = path.with_suffix(".tmp")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in sorted(entries):
                info = zipfile.ZipInfo(name.removeprefix("./"), date_time=FIXED_TIME)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, entries[name].read_bytes())
        partial.rename(path)
    sha = base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode()
    return LambdaArchive(path, sha)
