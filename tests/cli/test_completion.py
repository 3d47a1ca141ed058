"""Shell completion, exercised by the real shells (issue 20, item 18): the script smsctl prints is loaded
by bash, zsh and fish, and each completes a command name from what the user typed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BIN = str(Path(sys.executable).parent)  # where the smsctl console script is
INSTALL_HINT = "apt-get install zsh fish"


def shell(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and no {name}: {INSTALL_HINT}")
        pytest.skip(f"no {name} on this machine: {INSTALL_HINT}")
    return found


def run(*command: str) -> str:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "HOME": os.environ.get("HOME", "/tmp")}
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.integration
@pytest.mark.parametrize("variable", ["source_bash", "bash_source"])  # Typer's spelling, and Click's
@pytest.mark.integration
def test_bash_completes_a_command(variable: str) -> None:
    script = (f"source <(_SMSCTL_COMPLETE={variable} smsctl); COMP_WORDS=(smsctl exp); COMP_CWORD=1; "
              "_smsctl_completion smsctl; printf '%s\\n' \"${COMPREPLY[@]}\"")  # fmt: skip
    assert run(shell("bash"), "-c", script).split() == ["export"]


@pytest.mark.integration
@pytest.mark.integration
def test_bash_completes_a_subcommands_option() -> None:
    script = ("source <(_SMSCTL_COMPLETE=source_bash smsctl); COMP_WORDS=(smsctl export --for); COMP_CWORD=2; "
              "_smsctl_completion smsctl; printf '%s\\n' \"${COMPREPLY[@]}\"")  # fmt: skip
    assert "--format" in run(shell("bash"), "-c", script).split()


@pytest.mark.integration
@pytest.mark.integration
def test_fish_completes_a_command() -> None:
    script = 'env _SMSCTL_COMPLETE=source_fish smsctl | source; complete -C "smsctl exp"'
    completions = [line.split("\t")[0] for line in run(shell("fish"), "-c", script).splitlines()]
    assert completions == ["export"]


@pytest.mark.integration
@pytest.mark.integration
def test_zsh_loads_the_script_and_completes_through_it() -> None:
    script = ("autoload -Uz compinit && compinit -u; source <(_SMSCTL_COMPLETE=source_zsh smsctl); "
              "(( $+functions[_smsctl_completion] )) || exit 3; "
              "_SMSCTL_COMPLETE=complete_zsh _TYPER_COMPLETE_ARGS='smsctl exp' smsctl")  # fmt: skip
    out = run(shell("zsh"), "-f", "-c", script)
    assert "export" in out and "send" not in out
