"""The egress rule: where assay may send a request. Every outbound call (models, judge, dataset URLs, the LiteLLM
admin API, which receives the master key) passes through it, because the one HTTP client factory
(assay.httpclient) installs it in every client.

Two checks, one policy:

- `check_url` before a request: http or https only, a host, no credentials in the URL, no control characters.
- `check_address` on every address the host resolves to, at connect time (the address actually dialled, so a
  name that changes its answer between a check and the connection gains nothing):

  1. cloud-metadata addresses (169.254.169.254, 169.254.170.2, fd00:ec2::254, 100.100.100.200): never;
  2. an address inside an allowed CIDR, or any address of an allowed host: yes;
  3. loopback: only when loopback is allowed (local use, the lab);
  4. link-local, multicast, unspecified, reserved, and private ranges (RFC 1918, fc00::/7, 100.64.0.0/10):
     no, unless allowed by (2); in-cluster Services live there, so the chart allows them by its values;
  5. any other (public) address: yes.

The policy comes from the environment the chart sets (`egress` in its values):
ASSAY_EGRESS_ALLOWED_CIDRS (comma-separated), ASSAY_EGRESS_ALLOWED_HOSTS (comma-separated; a leading dot
allows a domain and its subdomains, e.g. `.svc.cluster.local`) and ASSAY_EGRESS_ALLOW_LOOPBACK (`true`).
The admission rules in assay.api.common refuse what the URL's text alone gives away; this module decides the rest.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import os
import socket
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import aiohttp
import aiohttp.abc
import aiohttp.tracing
import httpcore
import httpx

ENV_ALLOWED_CIDRS = "ASSAY_EGRESS_ALLOWED_CIDRS"
ENV_ALLOWED_HOSTS = "ASSAY_EGRESS_ALLOWED_HOSTS"
ENV_ALLOW_LOOPBACK = "ASSAY_EGRESS_ALLOW_LOOPBACK"
ENV_NAMES = (ENV_ALLOWED_CIDRS, ENV_ALLOWED_HOSTS, ENV_ALLOW_LOOPBACK)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT; not is_private in Python


class EgressDenied(Exception):
    """assay refused to send a request: the message names the host, the address and what would allow it."""


@dataclasses.dataclass(frozen=True)
class EgressPolicy:
    """What may be called besides public addresses (see the module docstring for the order of the rules)."""

    allowed_networks: tuple[IPNetwork, ...] = ()
    allowed_hosts: frozenset[str] = frozenset()
    allow_loopback: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EgressPolicy:
        """The policy the environment configures; raises ValueError naming the variable for a bad entry."""
        networks = []
        for entry in _entries(env.get(ENV_ALLOWED_CIDRS, "")):
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(f"{ENV_ALLOWED_CIDRS}: {entry!r} is not a CIDR such as 10.96.0.0/12") from None
        loopback = env.get(ENV_ALLOW_LOOPBACK, "").strip().lower()
        if loopback not in ("", "true", "false"):
            raise ValueError(f"{ENV_ALLOW_LOOPBACK}: {loopback!r} must be true or false")
        hosts = frozenset(host.lower().rstrip(".") for host in _entries(env.get(ENV_ALLOWED_HOSTS, "")))
        return cls(allowed_networks=tuple(networks), allowed_hosts=hosts, allow_loopback=loopback == "true")

    def host_allowed(self, host: str) -> bool:
        """Whether the host name itself is allowed (any address it resolves to, metadata excepted)."""
        name = host.lower().rstrip(".")
        return any(name == entry or (entry.startswith(".") and name.endswith(entry)) for entry in self.allowed_hosts)

    def refusal(self, address: IPAddress, *, host: str) -> str | None:
        """Why a connection to `address` (which `host` resolved to) is refused, or None when it is allowed."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address in METADATA_ADDRESSES:
            return "a cloud metadata address, never called"
        if self.host_allowed(host) or any(address in network for network in self.allowed_networks):
            return None
        if address.is_loopback:
            return None if self.allow_loopback else f"loopback, allowed only with {ENV_ALLOW_LOOPBACK}=true"
        for flag, what in (
            ("is_link_local", "link-local"),
            ("is_multicast", "multicast"),
            ("is_unspecified", "unspecified"),
            ("is_reserved", "reserved"),
        ):
            if getattr(address, flag):
                return what
        if address.is_private or address in SHARED_ADDRESS_SPACE:
            return (
                f"a private address, allowed only inside {ENV_ALLOWED_CIDRS} or for a host in {ENV_ALLOWED_HOSTS} "
                "(chart values egress.allowedCIDRs / egress.allowedHosts)"
            )
        return None


def current_policy() -> EgressPolicy:
    """The policy of this process's environment (read each time a client is made, so tests can set it)."""
    return EgressPolicy.from_env(os.environ)


def redact(url: str) -> str:
    """Scheme and host of a URL, for messages, status and logs: a presigned URL's path and query are secrets."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable URL>"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}" if parts.scheme else "<URL without a scheme>"


def check_url(url: httpx.URL) -> None:
    """Refuse a URL whose text alone is wrong; raises EgressDenied."""
    text = str(url)
    shown = redact(text)
    if url.scheme not in ("http", "https"):
        raise EgressDenied(f"{shown}: only http and https are called")
    if not url.host:
        raise EgressDenied(f"{shown}: the URL names no host")
    if url.userinfo:
        raise EgressDenied(f"{shown}: credentials inside a URL are refused; use the SecretKeyRef field")
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in text):
        raise EgressDenied(f"{shown}: the URL contains spaces or control characters")


def _check_resolved(policy: EgressPolicy, host: str, port: int, infos: Iterable[Any]) -> str:
    addresses = []
    for info in infos:
        raw = info[4][0]
        address = ipaddress.ip_address(raw.split("%", 1)[0])
        problem = policy.refusal(address, host=host)
        if problem is not None:
            raise EgressDenied(f"refusing to connect to {host}:{port}: it resolves to {address}, {problem}")
        addresses.append(str(address))
    if not addresses:
        raise EgressDenied(f"refusing to connect to {host}:{port}: it resolves to no address")
    return addresses[0]


class _CheckedAsyncBackend(httpcore.AsyncNetworkBackend):
    """Resolves the host itself, checks every address, and dials the checked address."""

    def __init__(self, policy: EgressPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout=timeout)
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc.strerror}") from None
        address = _check_resolved(self._policy, host, port, infos)
        return await self._inner.connect_tcp(
            address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise EgressDenied("unix sockets are not called")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class CheckedConnector(aiohttp.TCPConnector):
    """The aiohttp twin of _CheckedAsyncBackend: dials a host only when every address it resolves to passes.

    aiohttp dials only what _resolve_host returns, and returns an address literal there without asking the
    resolver, so the check sits on _resolve_host, not on a resolver.
    """

    def __init__(self, policy: EgressPolicy, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._policy = policy

    async def _resolve_host(
        self, host: str, port: int, traces: Sequence[aiohttp.tracing.Trace] | None = None
    ) -> list[aiohttp.abc.ResolveResult]:
        results = await super()._resolve_host(host, port, traces=traces)
        _check_resolved(self._policy, host, port, [(None, None, None, None, (r["host"],)) for r in results])
        return results


class _CheckedSyncBackend(httpcore.NetworkBackend):
    """The synchronous twin of _CheckedAsyncBackend."""

    def __init__(self, policy: EgressPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc.strerror}") from None
        address = _check_resolved(self._policy, host, port, infos)
        return self._inner.connect_tcp(
            address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise EgressDenied("unix sockets are not called")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def async_transport(policy: EgressPolicy, *, limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """An httpx transport that connects only where the policy allows."""
    transport = httpx.AsyncHTTPTransport(limits=limits)
    # httpx exposes no network_backend argument; its pool (httpcore's) takes one. A custom transport also keeps
    # httpx from mounting proxies from the environment, which would connect around the check.
    transport._pool._network_backend = _CheckedAsyncBackend(policy)
    return transport


def sync_transport(policy: EgressPolicy, *, limits: httpx.Limits) -> httpx.HTTPTransport:
    """The synchronous twin of async_transport."""
    transport = httpx.HTTPTransport(limits=limits)
    transport._pool._network_backend = _CheckedSyncBackend(policy)
    return transport


def _entries(value: str) -> list[str]:
    return [entry.strip() for entry in value.split(",") if entry.strip()]
