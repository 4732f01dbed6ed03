"""The package as users get it: the wheel carries the bundled templates; start-up stays light."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_installed_wheel_finds_bundled_templates(tmp_path: Path) -> None:
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    wheel = next(tmp_path.glob("promptopt-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for template in ("Navigate", "Poem", "Summarize"):
        assert f"promptopt/templates/{template}.yaml" in names
    assert "promptopt/prompts/optimizer.txt" in names and "promptopt/prompts/judge.txt" in names
    assert "promptopt/ui/app.py" in names  # `promptopt ui` runs this file from the installed package
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    code = (
        "from promptopt.template import bundled_templates, load_template; import promptopt;"
        "print(promptopt.__file__); t, p = load_template('navigate'); print(p); print(len(t.qa))"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    module, path, count = ran.stdout.split()
    assert module.startswith(str(target)) and path.startswith(str(target)) and int(count) >= 3


def test_python_dash_m_promptopt_works() -> None:
    ran = subprocess.run([sys.executable, "-m", "promptopt", "--version"], capture_output=True, text=True)
    assert ran.returncode == 0 and ran.stdout.startswith("promptopt ")


@pytest.mark.parametrize("command", [["--help"], ["init", "--list"], ["show", "--help"], ["ui", "--help"]])
def test_light_commands_do_not_import_litellm(command: list[str]) -> None:
    code = (
        "import sys; from promptopt.cli import app; sys.argv = ['promptopt', *sys.argv[1:]];"
        "\ntry:\n    app()\nexcept SystemExit:\n    pass\n"
        "print('LITELLM' if 'litellm' in sys.modules else 'LIGHT', file=sys.stderr)"
    )
    ran = subprocess.run([sys.executable, "-c", code, *command], capture_output=True, text=True)
    assert ran.stderr.strip().splitlines()[-1] == "LIGHT"
