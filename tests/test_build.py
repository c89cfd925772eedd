"""The build is reproducible and the image is what operators expect.

The lock files (written by `bash .ci/lock`) pin, with hashes, every dependency pyproject.toml
declares, at a version it allows: a dependency added without regenerating them fails here. No
Docker engine runs here, so the Dockerfile is linted with hadolint (skipped, loudly, without it;
failed with SETTLE_TEST_REQUIRE_HADOLINT=1, as .ci/run sets) and read: its base is pinned, it
installs from the lock and runs as a numeric non-root user. Its HEALTHCHECK command is run against a
real `settle serve`, and what its build context holds is built into a wheel, which must carry every
file of the packages (the GraphiQL page and files are package data, not beside a checkout).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from api.settings import PROJECT_ROOT
from tests.api.test_serve import free_port
from tests.conftest import HADOLINT, HADOLINT_PROBLEM, REQUIRE_HADOLINT

PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SERVICE_LOCK = PROJECT_ROOT / "requirements.lock"
TEST_LOCK = PROJECT_ROOT / "requirements-test.lock"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
DOCKERIGNORE = PROJECT_ROOT / ".dockerignore"
STARTUP_SECONDS = 60

# the OCI annotations the image carries, as hadolint's label schema types them
REQUIRED_LABELS = {
    "org.opencontainers.image.title": "text",
    "org.opencontainers.image.description": "text",
    "org.opencontainers.image.version": "semver",
    "org.opencontainers.image.revision": "text",
    "org.opencontainers.image.base.name": "text",
    "org.opencontainers.image.base.digest": "text",
}


@dataclass(frozen=True)
class Pin:
    version: Version
    hashes: tuple[str, ...]


def read_lock(path: Path) -> dict[str, Pin]:
    """The lock's pins by canonical name; an entry that is not `name==version` is an error."""
    pins: dict[str, Pin] = {}
    logical = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    for line in logical.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()  # a marker's quotes are kept
        options = [word for word in words if word.startswith("--")]
        requirement = Requirement(" ".join(word for word in words if not word.startswith("--")))
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{path.name}: {requirement} is not pinned exactly"
        hashes = tuple(option.removeprefix("--hash=") for option in options if option.startswith("--hash="))
        pins[canonicalize_name(requirement.name)] = Pin(Version(specifier.version), hashes)
    return pins


def declared(*, extras: tuple[str, ...] = ()) -> list[Requirement]:
    """pyproject.toml's dependencies (and those of `extras`) and its build backend."""
    texts = [*PYPROJECT["project"]["dependencies"], *PYPROJECT["build-system"]["requires"]]
    for extra in extras:
        texts += PYPROJECT["project"]["optional-dependencies"][extra]
    return [Requirement(text) for text in texts]


def unlocked(requirements: list[Requirement], pins: dict[str, Pin]) -> list[str]:
    problems = []
    for requirement in requirements:
        pin = pins.get(canonicalize_name(requirement.name))
        if pin is None:
            problems.append(f"{requirement} is not in the lock")
        elif pin.version not in requirement.specifier:
            problems.append(f"{requirement} is locked at {pin.version}, which it does not allow")
    return problems


STALE = "the lock is stale: run `bash .ci/lock` and commit requirements*.lock"


def test_the_service_lock_pins_every_dependency_and_the_build_backend_at_a_version_pyproject_allows() -> None:
    problems = unlocked(declared(), read_lock(SERVICE_LOCK))

    assert not problems, f"{STALE}: {'; '.join(problems)}"


def test_the_test_lock_adds_the_test_extra_and_keeps_every_pin_of_the_service_lock() -> None:
    service, test = read_lock(SERVICE_LOCK), read_lock(TEST_LOCK)
    problems = unlocked(declared(extras=("test",)), test)
    changed = [f"{name} {pin.version}" for name, pin in service.items() if test.get(name) != pin]

    assert not problems, f"{STALE}: {'; '.join(problems)}"
    assert not changed, f"CI would test other releases than the image runs ({', '.join(changed)}): {STALE}"


def test_every_locked_release_carries_sha256_hashes_of_its_files() -> None:
    for lock in (SERVICE_LOCK, TEST_LOCK):
        for name, pin in read_lock(lock).items():
            assert pin.hashes, f"{lock.name}: {name} has no hash"
            assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", digest) for digest in pin.hashes), name


# -- the Dockerfile, read ----------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def stages() -> list[list[Instruction]]:
    """The Dockerfile's stages, each a list of instructions (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    found: list[list[Instruction]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, arguments = line.partition(" ")
        instruction = Instruction(keyword.upper(), " ".join(arguments.split()))
        if instruction.keyword == "FROM":
            found.append([])
        found[-1].append(instruction)
    return found


def arguments_of(stage: list[Instruction], keyword: str) -> list[str]:
    return [instruction.arguments for instruction in stage if instruction.keyword == keyword]


def labels(stage: list[Instruction]) -> dict[str, str]:
    return dict(word.split("=", 1) for text in arguments_of(stage, "LABEL") for word in shlex.split(text))


def environment(stage: list[Instruction]) -> dict[str, str]:
    return dict(word.split("=", 1) for text in arguments_of(stage, "ENV") for word in shlex.split(text))


def copied_from_context(stage: list[Instruction]) -> list[str]:
    """The sources of a stage's COPY instructions that come from the build context."""
    sources: list[str] = []
    for text in arguments_of(stage, "COPY"):
        words = [word for word in shlex.split(text) if not word.startswith("--")]
        if "--from=" not in text:
            sources += words[:-1]
    return sources


def test_the_dockerfile_passes_hadolint_with_the_oci_labels_required(tmp_path: Path) -> None:
    if HADOLINT_PROBLEM is not None:
        if REQUIRE_HADOLINT:
            pytest.fail(f"hadolint is required (SETTLE_TEST_REQUIRE_HADOLINT=1): {HADOLINT_PROBLEM}")
        pytest.skip(f"no hadolint for the Dockerfile's lint: {HADOLINT_PROBLEM}")
    required = [f"--require-label={name}:{kind}" for name, kind in REQUIRED_LABELS.items()]
    # no configuration file is read (hadolint would take one from the working folder or $HOME): the
    # default failure threshold (info), no rule ignored
    lint = subprocess.run(
        [HADOLINT, "--no-color", "--strict-labels", *required, str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)},
    )

    findings = lint.stdout + lint.stderr
    assert (lint.returncode, findings) == (0, ""), findings


def test_the_image_is_built_and_run_on_one_base_pinned_by_exact_version_and_digest() -> None:
    bases = [stage[0].arguments.split()[0] for stage in stages()]
    final = labels(stages()[-1])

    assert len(set(bases)) == 1, bases
    pinned = re.fullmatch(r"(python:3\.11\.\d+-slim-bookworm)@(sha256:[0-9a-f]{64})", bases[0])
    assert pinned is not None, f"{bases[0]} is not python:3.11.N-slim-bookworm@sha256:DIGEST"
    assert final["org.opencontainers.image.base.name"] == f"docker.io/library/{pinned[1]}"
    assert final["org.opencontainers.image.base.digest"] == pinned[2]


def test_the_image_labels_carry_the_project_version() -> None:
    assert labels(stages()[-1])["org.opencontainers.image.version"] == PYPROJECT["project"]["version"]


def test_the_image_installs_the_locked_releases_by_hash_and_the_project_without_dependencies() -> None:
    build = " && ".join(arguments_of(stages()[0], "RUN"))

    assert "requirements.lock" in copied_from_context(stages()[0])
    assert re.search(r"pip install [^&]*--require-hashes -r requirements\.lock", build), build
    assert re.search(r"pip install [^&]*--no-deps --no-build-isolation \.", build), build
    assert "pip check" in build


def test_the_service_runs_as_a_numeric_user_that_is_not_root_and_exposes_its_port() -> None:
    final = stages()[-1]
    (user,) = arguments_of(final, "USER")
    uid, _, gid = user.partition(":")

    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0, user
    assert any(f"--uid {uid}" in run and f"--gid {gid}" in run for run in arguments_of(final, "RUN")), "no such user"
    assert arguments_of(final, "EXPOSE") == [environment(final)["SETTLE_PORT"]]
    assert arguments_of(final, "CMD") == ['["settle", "serve"]']


def healthcheck() -> list[str]:
    (text,) = arguments_of(stages()[-1], "HEALTHCHECK")
    options, _, command = text.partition(" CMD ")
    assert "--timeout=" in options and "--interval=" in options
    argv: list[str] = json.loads(command)
    return argv


def passes_healthcheck(port: int) -> bool:
    """The image's HEALTHCHECK command, run with this Python (the image's PATH finds its venv's)."""
    argv = healthcheck()
    assert argv[0] == "python"
    check = subprocess.run(
        [sys.executable, *argv[1:]],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SETTLE_PORT": str(port)},
        capture_output=True,
        timeout=30,
    )
    return check.returncode == 0


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """`settle serve` over a fresh SQLite file, without the demo data; stopped at the end."""
    port = free_port()
    with open(tmp_path / "serve.log", "wb") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--port", str(port)],
            cwd=PROJECT_ROOT,
            env={
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'health.sqlite3'}",
                "SETTLE_KEYS_DIR": str(tmp_path / "keys"),
                "SETTLE_DEMO_DATA": "0",
                "SETTLE_AUDIT_SEAL_SECONDS": "0",
            },
            stdout=log,
            stderr=log,
        )
    try:
        yield port, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


def test_the_healthcheck_passes_while_the_service_runs_and_fails_once_it_stops(
    serving: tuple[int, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    port, process = serving
    deadline = time.monotonic() + STARTUP_SECONDS
    while not passes_healthcheck(port):
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the healthcheck never passed: {(tmp_path / 'serve.log').read_text()[-2000:]}")
        time.sleep(0.5)

    process.send_signal(signal.SIGINT)
    process.wait(20)

    assert not passes_healthcheck(port)


# -- the build context --------------------------------------------------------------------------


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps `path` (relative, with slashes) out of the build context, by
    Docker's rules as far as this file uses them: the last pattern matching the path or one of its
    folders decides, `!` lets through, `**/` matches any depth (the top included).
    """
    parts = path.split("/")
    prefixes = ["/".join(parts[: length + 1]) for length in range(len(parts))]
    decision = False
    for pattern in patterns:
        let_through = pattern.startswith("!")
        pattern = pattern.removeprefix("!").rstrip("/")
        alternatives = [pattern, pattern.removeprefix("**/")]
        if any(fnmatch.fnmatchcase(prefix, alternative) for prefix in prefixes for alternative in alternatives):
            decision = not let_through
    return decision


def dockerignore() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def context_files(source: str) -> list[str]:
    """The files under `source` that the build context holds."""
    root = PROJECT_ROOT / source
    files = [root] if root.is_file() else sorted(path for path in root.rglob("*") if path.is_file())
    relative = [path.relative_to(PROJECT_ROOT).as_posix() for path in files]
    return [path for path in relative if not ignored(path, dockerignore())]


def test_the_build_context_holds_everything_the_dockerfile_copies_and_no_secret() -> None:
    sources = [source for stage in stages() for source in copied_from_context(stage)]
    patterns = dockerignore()

    for source in sources:
        assert (PROJECT_ROOT / source).exists(), f"COPY {source}: no such file in the checkout"
        assert not ignored(source, patterns), f"COPY {source}: .dockerignore keeps it out of the build context"
        assert context_files(source), f"COPY {source}: nothing of it reaches the build context"
    for secret in ("settle.env", ".env", "keys/dev/issuer.json", "keys/dev/keyring/mk-1.json", "var/settle.sqlite3"):
        assert ignored(secret, patterns), f"{secret} would reach the build context"


def test_what_the_build_stage_copies_builds_a_wheel_with_every_file_of_the_packages(tmp_path: Path) -> None:
    source = tmp_path / "src"
    for copied in copied_from_context(stages()[0]):
        for path in context_files(copied):
            (source / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(PROJECT_ROOT / path, source / path)
    packages = context_files("adjudication") + context_files("api")
    backend = Requirement(PYPROJECT["build-system"]["requires"][0])
    try:  # the backend as the lock pins it (.ci/run, the image); otherwise pip fetches one, as `pip install -e .` did
        isolation = [] if Version(version(backend.name)) not in backend.specifier else ["--no-build-isolation"]
    except PackageNotFoundError:
        isolation = []

    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", *isolation, "--wheel-dir", str(tmp_path), "."],
        cwd=source,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("settle-*.whl")
    carried = {name for name in zipfile.ZipFile(wheel).namelist() if ".dist-info/" not in name}

    assert "api/http/static/graphiql/graphiql.min.js" in carried  # package data, served in production too
    missing = sorted(set(packages) - carried)
    assert not missing, f"not package data ([tool.setuptools.package-data]), so not in the image: {missing}"


def test_the_lock_is_for_the_python_of_the_image() -> None:
    (base,) = {stage[0].arguments.split()[0] for stage in stages()}
    image_python = re.fullmatch(r"python:(3\.\d+)\.\d+-.*", base.split("@")[0])
    script = (PROJECT_ROOT / ".ci" / "lock").read_text(encoding="utf-8")

    assert image_python is not None
    assert f"--python-version {image_python[1]}" in script
    assert SpecifierSet(PYPROJECT["project"]["requires-python"]).contains(f"{image_python[1]}.0")
