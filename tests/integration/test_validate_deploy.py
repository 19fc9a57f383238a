"""The deployment validator fails on broken copies: a manifest, a custom resource, the compose
file, an alert rule, a dashboard, a missing or wrong setting, a drifted generated file.

Runs `.ci/validate-deploy --self-test` (no Docker, no cluster; it reuses the tools
`make validate-deploy` caches).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_broken_copy_fails_and_the_unbroken_one_passes() -> None:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["OPENSMM_PYTHON"] = sys.executable
    result = subprocess.run(
        [str(ROOT / ".ci" / "validate-deploy"), "--self-test"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    for case, check in [
        ("manifest", "Kubernetes 1.30.0 schemas"),
        ("crd resource", "CRD schemas"),
        ("compose", "Compose spec JSON schema"),
        ("rule", "promtool check rules"),
        ("dashboard", "parse errors above"),
        ("missing setting (compose)", "settings"),
        ("missing setting (k8s)", "settings"),
        ("wrong setting value", "settings"),
        ("drifted PrometheusRule", "generated files"),
    ]:
        line = next((x for x in out.splitlines() if f"ok: {case} (" in x), "")
        assert check in line, f"{case}: {line or 'no result'}"
    assert "ok: the unbroken copy passes" in out
