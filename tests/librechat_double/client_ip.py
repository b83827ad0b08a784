"""`req.ip` as Express computes it behind `trust proxy = N`, then LibreChat's `removePorts`."""

from __future__ import annotations


def forwarded_for_entries(header: str) -> list[str]:
    """Addresses of an X-Forwarded-For value, left to right, empty entries dropped (`forwarded`)."""
    return [entry.strip(" ") for entry in header.split(",") if entry.strip(" ")]


def express_request_ip(peer: str | None, forwarded_for: str | None, trust_proxy: int) -> str | None:
    """proxy-addr with a hop count: walk from the socket peer leftwards through X-Forwarded-For.

    The first N addresses (peer, then the right-most XFF entries) are trusted proxies, so the
    answer is the (N+1)-th address from the right, or the left-most one when the chain is
    shorter. LibreChat sets `Number(TRUST_PROXY) || 1`, so 0 behaves like 1.
    """
    hops = trust_proxy if trust_proxy > 0 else 1
    chain: list[str | None] = [peer]
    if forwarded_for:
        chain.extend(reversed(forwarded_for_entries(forwarded_for)))
    return remove_ports(chain[min(hops, len(chain) - 1)])


def through_proxies(peer: str | None, forwarded_for: str | None, proxies: int) -> str | None:
    """X-Forwarded-For as LibreChat receives it behind `proxies` reverse proxies that each append
    the address they saw (all of them see the same peer here: the double has no real proxy)."""
    if proxies <= 0 or not peer:
        return forwarded_for
    entries = forwarded_for_entries(forwarded_for or "") + [peer] * proxies
    return ", ".join(entries)


def remove_ports(ip: str | None) -> str | None:
    """LibreChat's limiter key: `[v6]:port` and `v4:port` lose the port, bare IPv6 stays."""
    if not ip:
        return ip
    if ip.startswith("["):
        close = ip.find("]")
        return ip[1:close] if close > 0 else ip
    host, sep, port = ip.rpartition(":")
    if sep and "." in ip and port.isdigit() and port.isascii():
        return host
    return ip
