"""Bridges, veths, IPAM (pure), the embedded DNS server, the port proxy and nftables rules.

Entry points: ``driver.NetworkDriver`` (networks and container endpoints, called from a worker
thread), ``services.NetworkServices`` (DNS resolvers and the port proxy in the supervisor's event
loop), ``dnsfiles`` (a container's resolv.conf and hosts texts), ``ports`` (Compose port syntax,
``orc port``). The specs live in ``spec``; recording fakes in ``fake``. See specs/networking.md.
Nothing here imports pyroute2 at module load (CLI cold start).
"""
