"""benchmarks/device_check.py --cpu: the GPU machine's one command, rehearsed at tiny sizes,
so the script cannot rot between the rare runs on a GPU."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STEPS = "abcdefgh"


@pytest.mark.slow
def test_device_check_rehearsal_reports_every_step(tmp_path):
    out = tmp_path / "check"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "device_check.py"), "--cpu", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "device_check.json").read_text())
    assert report["finished"] is True and report["mode"] == "cpu rehearsal"
    assert list(report["steps"]) == list(STEPS)
    failed = {k: v.get("error") or v.get("result", {}).get("tail") for k, v in report["steps"].items()
              if v["status"] != "ok"}
    assert not failed, failed  # on the CPU every step can run: none may fail
    steps = report["steps"]
    assert steps["c"]["result"]["device"]["images_per_s"] > 0
    assert all(row["pass"] for row in steps["d"]["result"]["rows"].values())
    assert steps["e"]["result"]["rows"] and 200e6 < steps["e"]["result"]["flops_per_image"] < 220e6
    assert set(steps["f"]["result"]["formats"]) == {"npy", "png"}
    assert steps["g"]["result"]["one_process"]["rc"] == 0
    assert steps["h"]["result"]["celeba_hours"] > 0
    # Only the report and the log go to --out: its files travel back from the GPU machine, a few at most.
    assert sorted(p.name for p in out.iterdir()) == ["device_check.json", "device_check.log"]
    log = (out / "device_check.log").read_text()
    assert "device check (cpu rehearsal)" in log and all(f"({k})" in log for k in STEPS)


def test_a_run_killed_mid_way_still_leaves_its_report(tmp_path):
    out = tmp_path / "check"
    proc = subprocess.Popen([sys.executable, str(REPO / "benchmarks" / "device_check.py"), "--cpu", "--out", str(out),
                             "--work", str(tmp_path / "scratch")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    report_file = out / "device_check.json"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if report_file.is_file() and json.loads(report_file.read_text())["steps"]["a"]["status"] != "pending":
                break
            time.sleep(0.2)
    finally:
        proc.kill()  # as the machine's time limit would
        proc.wait()
    report = json.loads(report_file.read_text())
    assert report["finished"] is False
    assert report["steps"]["a"]["status"] == "ok"
    assert report["steps"]["h"]["status"] == "pending"
