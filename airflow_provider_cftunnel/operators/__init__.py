"""Operators of the Cloudflare Tunnel provider."""
