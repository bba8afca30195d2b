"""`import monai_ssl` is cheap: no MONAI, Ignite, matplotlib or ITK at import time."""

from __future__ import annotations

import json
import subprocess
import sys


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_is_lazy_and_fast():
    code = (
        "import json, sys, time; t = time.perf_counter(); import monai_ssl, monai_ssl.data, monai_ssl.utils; "
        "dt = time.perf_counter() - t; "
        "print(json.dumps({'dt': dt, 'mods': [m for m in ('ignite', 'matplotlib', 'itk', 'monai', 'torch') "
        "if m in sys.modules]}))"
    )
    result = _run(code)
    assert result["mods"] == [], f"eager heavy imports: {result['mods']}"
    assert result["dt"] < 2.0, f"import monai_ssl took {result['dt']:.2f} s"


def test_subpackages_resolve_lazily():
    import monai_ssl

    assert monai_ssl.utils.SSLKeys.VIEW_0 == "image_view_0"
    assert "data" in dir(monai_ssl)
