"""Layering that the code relies on: the dashboard and the analysis layer never import torch."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Every page of the app (the Live lab excepted: it runs models) rendered in one fresh interpreter.
_PROBE = r"""
import sys
from streamlit.testing.v1 import AppTest

import robust_core.analysis, robust_core.export, robust_core.labelspace, robust_core.reference, dashboard.charts  # noqa
at = AppTest.from_file("app.py", default_timeout=120)
at.run()
pages = sorted(p for p in __import__("glob").glob("pages/*/*.py") if "live" not in p)
for page in pages:
    at.switch_page(page)
    at.run()
    assert not at.exception, (page, [e.value for e in at.exception])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "open_clip"))
print("PAGES", len(pages))
print("HEAVY", heavy[:5])
"""


def test_dashboard_and_analysis_never_import_torch():
    result = subprocess.run([sys.executable, "-c", _PROBE], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "HEAVY []" in result.stdout, result.stdout
    assert int(result.stdout.split("PAGES ")[1].split()[0]) >= 8
