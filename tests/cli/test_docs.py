"""The README and --help stay true: every command, variable, exit code and magic number is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from smsctl.cli import app, app_for
from smsctl.config import VARIABLES
from smsctl.errors import EXIT_CODE_MEANINGS
from smsctl.sandbox.emulator import SCENARIOS

README = (Path(__file__).parents[2] / "README.md").read_text()
COMMANDS = sorted(get_command(app).commands)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help_and_is_in_the_readme(name: str) -> None:
    result = CliRunner().invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example:" in result.stdout
    assert f"`smsctl {name}" in README


def _invocations() -> list[list[str]]:
    """Every command and subcommand, with a bad option and with --help."""
    names = [[name] for name in COMMANDS]
    for name, command in get_command(app).commands.items():  # type: ignore[attr-defined]
        names += [[name, sub] for sub in getattr(command, "commands", {})]
    return [[*name, tail] for name in names for tail in ("--help", "--no-such-option")]


@pytest.mark.parametrize("args", _invocations(), ids=" ".join)
def test_a_process_running_one_command_builds_only_it_and_behaves_as_the_whole_app(args: list[str]) -> None:
    one = app_for(args)
    assert one is not app and list(get_command(one).commands) == [args[0]]  # type: ignore[attr-defined]
    alone, whole = CliRunner().invoke(one, args), CliRunner().invoke(app, args)
    assert (alone.exit_code, alone.stdout, alone.stderr) == (whole.exit_code, whole.stdout, whole.stderr)


@pytest.mark.parametrize("args", [[], ["--help"], ["--version"], ["sendd", "+14155550101"], ["-h", "send"]])
def test_anything_but_a_command_first_gets_the_whole_app(args: list[str]) -> None:
    assert app_for(args) is app


@pytest.mark.parametrize("variable", [v.name for v in VARIABLES])
def test_every_variable_is_in_the_readme_and_env_example(variable: str) -> None:
    assert f"| `{variable}` |" in README
    assert re.search(rf"^#? ?{variable}=", (Path(__file__).parents[2] / ".env.example").read_text(), re.M)


def test_exit_code_table_matches() -> None:
    table = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", README, re.M))
    assert table == {str(int(code)): meaning for code, meaning in EXIT_CODE_MEANINGS.items()}


def test_exit_codes_are_in_help() -> None:
    help_text = CliRunner().invoke(app, ["--help"]).stdout
    for code, meaning in EXIT_CODE_MEANINGS.items():
        assert f"{int(code):>3}  {meaning}" in help_text


@pytest.mark.parametrize("number", list(SCENARIOS))
def test_every_magic_number_is_in_the_readme(number: str) -> None:
    scenario = SCENARIOS[number]
    assert f"| `+{number}` | {scenario.name} | {scenario.meaning} |" in README
