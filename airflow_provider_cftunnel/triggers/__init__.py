"""Triggers of the Cloudflare Tunnel provider."""
