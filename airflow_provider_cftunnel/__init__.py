"""Apache Airflow provider for Cloudflare Tunnel.

Importing this package is deliberately cheap: every Airflow component imports it while discovering
providers, so it holds nothing but the version.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
