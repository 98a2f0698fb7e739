"""Sensors of the Cloudflare Tunnel provider."""
