"""pytest plugin: fixtures that run the local Cloudflare simulator (work in progress)."""
