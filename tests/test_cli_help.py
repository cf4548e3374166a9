"""The CLI says its defaults, and answers --help without loading torch or the runtimes."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from dcgan_rt.cli.main import app

_ACTIONS = {"help", "version"}  # options that do something instead of setting a value


def _option_rows(help_text: str) -> dict[str, str]:
    """Option name -> its row in typer's --help box (continuation lines joined)."""
    rows, current = {}, None
    for line in help_text.splitlines():
        m = re.match(r"^│\s+(?:\*\s+)?(--?[\w-]+)", line)
        if m:
            current = m.group(1)
            rows[current] = line
        elif current and re.match(r"^│\s{2,}\S", line):
            rows[current] += " " + line
        else:
            current = None
    return rows


def _commands(group, path=()):
    """(words, click command) for the app and every command and subcommand."""
    yield path, group
    for name, cmd in getattr(group, "commands", {}).items():
        yield from _commands(cmd, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(app)))


@pytest.mark.parametrize("path, cmd", COMMANDS, ids=[" ".join(p) or "dcgan-rt" for p, _ in COMMANDS])
def test_every_option_shows_its_default(path, cmd):
    command = " ".join(path)
    args = [*path, "--help"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "300", "NO_COLOR": "1"}, terminal_width=300)
    assert result.exit_code == 0, result.output
    rows = _option_rows(result.stdout)
    silent = []
    for param in cmd.params:
        if param.param_type_name != "option" or param.required or param.name in _ACTIONS:
            continue
        row = next((rows[o] for o in param.opts if o in rows), "")
        if "[default:" not in row:
            silent.append(f"{command or 'dcgan-rt'} {'/'.join(param.opts)}: {row or 'not in --help'}")
    assert not silent, "\n".join(silent)


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["generate", "--help"], ["import", "--help"]])
def test_help_imports_no_heavy_modules(args):
    code = (
        "import sys\n"
        "from dcgan_rt.cli.main import app\n"
        f"try:\n    app({args!r}, prog_name='dcgan-rt')\nexcept SystemExit:\n    pass\n"
        "heavy = ('torch', 'torchvision', 'numpy', 'onnx', 'onnxruntime', 'openvino', 'PIL', 'safetensors')\n"
        "print('\\n' + __import__('json').dumps(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
