"""The versions of Python and of the packages autotune works with, for bug reports and for the
metadata written next to an exported model."""

from __future__ import annotations

import platform

# What trained a model and can load it again.
MODEL_PACKAGES = ("autotune", "tensorflow", "keras", "optuna", "numpy", "scikit-learn")
# What a bug report needs: the above, the storage drivers and the optional extras.
ENV_PACKAGES = (
    "autotune", "optuna", "optuna-integration", "optuna-dashboard", "tensorflow", "keras",
    "scikit-learn", "numpy", "sqlalchemy", "psycopg", "pymysql", "torch",
)  # fmt: skip


def versions(packages: tuple[str, ...] = ENV_PACKAGES) -> dict[str, str]:
    """Python's version and each package's, or ``"not installed"``."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for package in packages:
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out
