"""Hooks of the Cloudflare Tunnel provider."""
