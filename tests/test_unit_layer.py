"""The unit layer stands alone: ``pytest tests/unit`` passes and never imports TensorFlow."""

import subprocess
import sys
from pathlib import Path

UNIT = Path(__file__).parent / "unit"


def test_the_unit_layer_passes_without_importing_tensorflow(tmp_path: Path):
    # -p no:cacheprovider: leave the checkout's .pytest_cache alone
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(UNIT), "-q", "-p", "no:cacheprovider", "-W",
         "error::DeprecationWarning:autotune"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    assert "imported TensorFlow" not in result.stdout
    assert " passed" in result.stdout.splitlines()[-1]
