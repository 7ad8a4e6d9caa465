"""``datakeep ui`` as a command: the address it listens on and a missing extra."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import datakeep


def _cli(*args: str, cwd: Path) -> subprocess.Popen[str]:
    # ``datakeep.cli.ui`` imported by name: it registers the command on the group
    code = "import datakeep.cli.ui; from datakeep.cli import main; main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_command_refuses_another_address_without_allow_remote(tmp_path: Path) -> None:
    datakeep.init(tmp_path).close()
    refused = _cli("ui", "--host", "0.0.0.0", "--port", "0", cwd=tmp_path)
    out, err = refused.communicate(timeout=60)
    assert refused.returncode == 2 and "--allow-remote" in err and out == ""
    allowed = _cli("ui", "--host", "0.0.0.0", "--port", "0", "--allow-remote", cwd=tmp_path)
    try:
        assert allowed.stdout is not None and allowed.stderr is not None
        line = allowed.stdout.readline()
        assert "read-only at http://0.0.0.0:" in line
        assert "warning: serving on 0.0.0.0, not loopback" in allowed.stderr.readline()
    finally:
        allowed.terminate()
        allowed.wait(timeout=30)


def test_command_says_when_the_extra_is_missing(tmp_path: Path) -> None:
    datakeep.init(tmp_path).close()
    code = (
        "import sys; sys.modules['uvicorn'] = None\n"
        "import datakeep.cli.ui; from datakeep.cli import main; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "ui"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "needs the ui extra" in result.stderr and "pip install 'datakeep[ui]'" in result.stderr
    assert "Traceback" not in result.stderr
