"""Local Cloudflare Tunnel API simulator (work in progress)."""
