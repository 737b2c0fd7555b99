"""`hub-admin completion bash|zsh`: the script bash accepts, and what it completes.

The script is loaded into a real bash; its completion function is then called
the way bash calls it (COMP_WORDS, COMP_CWORD) and COMPREPLY is read back.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from hub.cli.completion import bash_script, tree
from hub.cli.main import build_parser
from tests.test_cli import CLI, clean_env

BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(BASH is None, reason="bash is not installed")


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("completion") / "hub-admin.bash"
    path.write_text(bash_script(build_parser()))
    return path


def complete(script: Path, *words: str, cwd: Path | None = None) -> list[str]:
    """What bash offers for the last of `words` (hub-admin is the first)."""
    line = " ".join(shlex.quote(w) for w in ("hub-admin", *words))
    program = (
        f"source {shlex.quote(str(script))}\n"
        f"COMP_WORDS=({line})\n"
        f"COMP_CWORD={len(words)}\n"
        '_hub_admin\nprintf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    assert BASH is not None
    r = subprocess.run(
        [BASH, "--norc", "--noprofile", "-c", program],
        capture_output=True,
        text=True,
        check=True,
        cwd=cwd,
    )
    return sorted(line for line in r.stdout.splitlines() if line)


def hub_admin(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, check=False, env=clean_env()
    )


def test_printed_script_is_valid_bash_and_registers(tmp_path: Path) -> None:
    r = hub_admin("completion", "bash")
    assert r.returncode == 0, r.stderr
    path = tmp_path / "c.bash"
    path.write_text(r.stdout)
    assert BASH is not None
    subprocess.run([BASH, "-n", str(path)], check=True)
    registered = subprocess.run(
        [BASH, "--norc", "--noprofile", "-c", f"source {path}; complete -p hub-admin"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert registered.stdout.strip() == "complete -F _hub_admin hub-admin"


def test_zsh_script_loads_the_bash_function_through_bashcompinit() -> None:
    r = hub_admin("completion", "zsh")
    assert r.returncode == 0, r.stderr
    first, _, rest = r.stdout.partition("\n")
    assert first == "#compdef hub-admin"
    assert "autoload -U +X bashcompinit && bashcompinit" in rest
    assert "complete -F _hub_admin hub-admin" in rest
    if shutil.which("zsh"):
        subprocess.run(["zsh", "-n", "-c", r.stdout], check=True)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["completion", "fish"], "argument SHELL: invalid choice: 'fish'"),
        (["completion"], "the following arguments are required: SHELL"),
    ],
)
def test_bad_shell_is_a_usage_error(argv: list[str], message: str) -> None:
    r = hub_admin(*argv)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.startswith("hub-admin: error: ")
    assert message in r.stderr


def test_nouns_and_verbs(script: Path) -> None:
    nouns = ["audit", "completion", "group", "server", "signup", "signups", "token", "totp", "user"]
    assert [w for w in complete(script, "") if not w.startswith("-")] == nouns
    assert complete(script, "us") == ["user"]
    assert complete(script, "se") == ["server"]
    assert complete(script, "signup", "") == ["approve", "list", "reject"]
    assert complete(script, "group", "") == ["add", "create", "delete", "list", "remove", "show"]
    assert complete(script, "user", "r") == ["remove", "rename"]
    assert complete(script, "server", "st") == ["start", "stop"]
    # global options and their values before the noun are skipped
    assert complete(script, "--url", "http://h/", "--json", "token", "") == [
        "create",
        "list",
        "revoke",
    ]


def test_options_and_choices(script: Path) -> None:
    assert complete(script, "server", "start", "--p") == ["--parallel"]
    assert complete(script, "user", "list", "--s") == ["--sort", "--state"]
    assert complete(script, "user", "list", "--state", "") == ["active", "inactive", "ready"]
    assert complete(script, "server", "list", "--state", "") == ["pending", "ready", "stopped"]
    assert complete(script, "user", "set-admin", "ann", "--o") == ["--off", "--on"]
    assert complete(script, "completion", "") == ["bash", "zsh"]
    assert complete(script, "group", "delete", "lab", "--y") == ["--yes"]
    assert "--apply" in complete(script, "user", "import", "--")
    # a value the parser cannot know (a user name) gets no guesses
    assert complete(script, "server", "start", "--user", "") == []
    assert complete(script, "audit", "--act") == ["--action", "--actor"]


def test_file_arguments(script: Path, tmp_path: Path) -> None:
    (tmp_path / "roster-a.csv").write_text("username\n")
    (tmp_path / "roster-b.csv").write_text("username\n")
    assert complete(script, "user", "import", "ros", cwd=tmp_path) == [
        "roster-a.csv",
        "roster-b.csv",
    ]


def test_every_command_of_the_parser_is_in_the_script(script: Path) -> None:
    text = script.read_text()
    for key, command in tree(build_parser()).items():
        assert f'"{key}")' in text
        for option in command.options:
            assert option in text
