"""Bridges, veths, IPAM (pure), the embedded DNS server, the port proxy and nftables rules."""
