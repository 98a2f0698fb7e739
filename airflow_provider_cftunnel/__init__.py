"""Apache Airflow provider for Cloudflare Tunnel.

Importing this package is deliberately cheap: every Airflow component imports it while discovering
providers, so it holds nothing but the version.
"""

from __future__ import annotations

__all__ = ["__version__"]

# The one place the version is written: pyproject.toml reads it from here (setuptools dynamic ``attr``, parsed
# without importing), so the package and its distribution always agree, and this import stays free.
#: The provider's version.
__version__ = "0.1.0"
