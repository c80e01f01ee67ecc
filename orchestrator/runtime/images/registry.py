"""OCI distribution client on httpx: manifests, blobs, auth, TLS, retries.

Owned here: :class:`RegistryClient` and :class:`RegistryOptions`. The puller uses it to fetch
manifests (by tag or digest, digest verified), resolve a tag to its digest (``HEAD``), and stream
blobs into files with digest and size verification, ``Range`` resume and retries with backoff on an
injected clock and sleep.

Transport rules: HTTPS, trusting the system CAs plus ``<certs_dir>/<host[:port]>/*.crt`` (client
certificates from ``*.cert``/``*.key`` there too), as Docker's ``certs.d`` convention; plain HTTP
only for loopback hosts or hosts listed as insecure (tried after HTTPS fails, as Docker does).
Authentication: anonymous, then whatever the ``/v2/`` challenge asks: ``Basic`` with stored
credentials, or ``Bearer`` tokens from the realm (with stored credentials if any), cached per scope.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import certifi
import httpx

from orchestrator.errors import NotFoundError, OrcError, PermanentError, TemporaryError
from orchestrator.runtime.images.auth import Challenge, Credentials, TokenCache, parse_challenges
from orchestrator.runtime.images.manifest import ACCEPT
from orchestrator.runtime.images.reference import Reference

DEFAULT_CERTS_DIRS = (Path("/etc/orc/certs.d"), Path("/etc/docker/certs.d"))
RETRY_STATUSES = (408, 429, 500, 502, 503, 504)


class RegistryError(PermanentError):
    """The registry refused or answered something orc cannot use."""


class AuthError(RegistryError):
    """The registry wants credentials orc does not have, or refused the ones it has."""


class BlobError(RegistryError):
    """A blob arrived with the wrong size or digest."""


class RegistryUnavailable(TemporaryError):
    """The registry could not be reached, or kept failing, after all retries."""


@dataclass
class RegistryOptions:
    """How to talk to registries; every side input is injectable for tests."""

    credentials: Credentials = field(default_factory=lambda: Credentials(None))
    certs_dirs: tuple[Path, ...] = DEFAULT_CERTS_DIRS
    insecure_registries: frozenset[str] = frozenset()
    retries: int = 4
    backoff: float = 0.5
    max_backoff: float = 8.0
    timeout: float = 60.0
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep
    clock: Callable[[], float] = time.monotonic
    transport: httpx.AsyncBaseTransport | None = None
    user_agent: str = "orc"


def options_from_environment(environ: Mapping[str, str], home: Path, **overrides: Any) -> RegistryOptions:
    """Registry options as Docker's tools find them: ``$DOCKER_CONFIG/config.json`` (default
    ``~/.docker``), ``ORC_INSECURE_REGISTRIES`` (comma list of host:port), ``ORC_CERTS_DIR``
    (replaces the default CA directories). The caller passes the environment (CLI, supervisor)."""
    docker_config = Path(environ.get("DOCKER_CONFIG") or home / ".docker") / "config.json"
    insecure = frozenset(
        h.strip() for h in environ.get("ORC_INSECURE_REGISTRIES", "").split(",") if h.strip()
    )
    certs = (Path(environ["ORC_CERTS_DIR"]),) if environ.get("ORC_CERTS_DIR") else DEFAULT_CERTS_DIRS
    return RegistryOptions(
        credentials=Credentials(docker_config), certs_dirs=certs, insecure_registries=insecure, **overrides
    )


@dataclass(frozen=True)
class FetchedManifest:
    data: bytes
    media_type: str
    digest: str


def _is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:].split("]")[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class _Host:
    """Per-registry-host connection state: scheme, client, auth challenge."""

    def __init__(self, host: str, client: httpx.AsyncClient, schemes: list[str]) -> None:
        self.host = host
        self.client = client
        self.schemes = schemes
        self.scheme: str | None = None
        self.challenge: Challenge | None = None
        self.lock = anyio.Lock()


class RegistryClient:
    """An async OCI distribution client. Use as ``async with RegistryClient(options) as c:``."""

    def __init__(self, options: RegistryOptions | None = None) -> None:
        self.options = options or RegistryOptions()
        self.tokens = TokenCache(self.options.clock)
        self._hosts: dict[str, _Host] = {}

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for h in self._hosts.values():
            await h.client.aclose()
        self._hosts.clear()

    # --- connection setup -------------------------------------------------------------------

    def _ssl_context(self, host: str, verify: bool) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=certifi.where())
        if not verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        for base in self.options.certs_dirs:
            d = base / host
            if not d.is_dir():
                continue
            try:
                for crt in sorted(d.glob("*.crt")):
                    ctx.load_verify_locations(cafile=str(crt))
                for cert in sorted(d.glob("*.cert")):
                    key = cert.with_suffix(".key")
                    if key.exists():
                        ctx.load_cert_chain(str(cert), str(key))
            except (ssl.SSLError, OSError) as exc:
                raise RegistryError(f"cannot load the TLS files in {d}: {exc}") from exc
        return ctx

    def _host(self, host: str) -> _Host:
        h = self._hosts.get(host)
        if h is None:
            insecure = host in self.options.insecure_registries
            schemes = ["https", "http"] if insecure or _is_loopback(host) else ["https"]
            client = httpx.AsyncClient(
                verify=self._ssl_context(host, verify=not insecure),
                timeout=httpx.Timeout(self.options.timeout, connect=10.0),
                follow_redirects=True,
                transport=self.options.transport,
                headers={"User-Agent": self.options.user_agent},
            )
            h = self._hosts[host] = _Host(host, client, schemes)
        return h

    async def _pick_scheme(self, h: _Host) -> str:
        async with h.lock:
            if h.scheme is not None:
                return h.scheme
            last: Exception | None = None
            for scheme in h.schemes:
                try:
                    resp = await self._send_with_retries(h, "GET", f"{scheme}://{h.host}/v2/", {})
                except RegistryUnavailable as exc:
                    last = exc
                    continue
                except ssl.SSLError as exc:
                    last = exc
                    continue
                await resp.aclose()
                if resp.status_code == 401:
                    h.challenge = _pick_challenge(resp.headers.get_list("www-authenticate"))
                h.scheme = scheme
                return scheme
            if isinstance(last, RegistryUnavailable):
                raise last
            raise RegistryUnavailable(f"registry {h.host} is unreachable: {last}", retry_after=5.0)

    async def _send_with_retries(
        self, h: _Host, method: str, url: str, headers: dict[str, str], *, stream: bool = False
    ) -> httpx.Response:
        attempt = 0
        while True:
            try:
                request = h.client.build_request(method, url, headers=headers)
                resp = await h.client.send(request, stream=stream)
            except httpx.ConnectError as exc:
                if _is_tls_error(exc):
                    if len(h.schemes) > 1 and url.startswith("https://"):
                        raise RegistryUnavailable(f"TLS to {h.host} failed: {exc}") from exc
                    raise RegistryError(
                        f"TLS connection to registry {h.host} failed: {exc} (put its CA certificate in "
                        f"certs.d/{h.host}/ca.crt)"
                    ) from exc
                error: Exception = exc
            except httpx.TransportError as exc:
                error = exc
            else:
                if resp.status_code not in RETRY_STATUSES or attempt >= self.options.retries:
                    return resp
                await resp.aclose()
                error = RegistryError(f"{method} {url}: HTTP {resp.status_code}")
            if attempt >= self.options.retries:
                raise RegistryUnavailable(
                    f"registry {h.host} failed after {attempt + 1} attempts: {str(error) or type(error).__name__}",
                    retry_after=self.options.max_backoff,
                ) from error
            await self.options.sleep(self.backoff_delay(attempt))
            attempt += 1

    def backoff_delay(self, attempt: int) -> float:
        return min(self.options.backoff * (2**attempt), self.options.max_backoff)

    # --- auth ------------------------------------------------------------------------------

    async def _auth_header(self, h: _Host, scope: str, *, refresh: bool = False) -> dict[str, str]:
        challenge = h.challenge
        if challenge is None:
            return {}
        login = self.options.credentials.lookup(h.host)
        if challenge.scheme == "basic":
            if login is None:
                raise AuthError(f"registry {h.host} requires credentials (none in the docker config)")
            return {"Authorization": _basic(login.username, login.password)}
        realm = challenge.params.get("realm", "")
        service = challenge.params.get("service", "")
        if not realm:
            raise AuthError(f"registry {h.host} sent a bearer challenge without a realm")
        if refresh:
            self.tokens.drop(realm, service, scope)
        token = self.tokens.get(realm, service, scope)
        if token is None:
            token = await self._fetch_token(h, realm, service, scope, login)
        return {"Authorization": f"Bearer {token}"}

    async def _fetch_token(self, h: _Host, realm: str, service: str, scope: str, login: Any) -> str:
        params = {"scope": scope}
        if service:
            params["service"] = service
        auth = httpx.BasicAuth(login.username, login.password) if login is not None else None
        attempt = 0
        while True:
            try:
                resp = await h.client.get(realm, params=params, auth=auth or httpx.USE_CLIENT_DEFAULT)
            except httpx.InvalidURL as exc:
                raise AuthError(f"registry {h.host} names an invalid token realm {realm!r}") from exc
            except httpx.UnsupportedProtocol as exc:
                raise AuthError(
                    f"registry {h.host} names a token realm that is not http(s): {realm!r}"
                ) from exc
            except httpx.TransportError as exc:
                if attempt >= self.options.retries:
                    raise RegistryUnavailable(f"token service {realm} unreachable: {exc}") from exc
                await self.options.sleep(self.backoff_delay(attempt))
                attempt += 1
                continue
            break
        if resp.status_code in (401, 403):
            who = f"user {login.username!r}" if login is not None else "anonymous access"
            raise AuthError(f"token service {realm} refused {who} for {scope} (HTTP {resp.status_code})")
        if resp.status_code != 200:
            raise AuthError(f"token service {realm} answered HTTP {resp.status_code} for {scope}")
        try:
            doc = resp.json()
            token = str(doc.get("token") or doc.get("access_token") or "")
            expires_in = float(doc.get("expires_in") or 60)
        except (ValueError, AttributeError) as exc:
            raise AuthError(f"token service {realm} sent no JSON token") from exc
        if not token:
            raise AuthError(f"token service {realm} sent an empty token")
        self.tokens.put(realm, service, scope, token, expires_in)
        return token

    async def _request(
        self,
        ref: Reference,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        *,
        stream: bool = False,
    ) -> httpx.Response:
        """A request to ``/v2/<repo>/<path>`` with auth, retried; 401 gets one fresh token."""
        h = self._host(ref.registry_host)
        scheme = await self._pick_scheme(h)
        scope = f"repository:{ref.path}:pull"
        url = f"{scheme}://{h.host}/v2/{ref.path}/{path}"
        refreshed = False
        while True:
            all_headers = dict(headers or {})
            all_headers.update(await self._auth_header(h, scope, refresh=refreshed))
            resp = await self._send_with_retries(h, method, url, all_headers, stream=stream)
            if resp.status_code != 401 or refreshed:
                break
            await resp.aclose()
            challenge = _pick_challenge(resp.headers.get_list("www-authenticate"))
            if challenge is None:
                break
            h.challenge = challenge
            refreshed = True
        if resp.status_code == 401:
            await resp.aclose()
            login = self.options.credentials.lookup(h.host)
            raise AuthError(
                f"registry {h.host} denied access to {ref.name} (401 unauthorized"
                + ("; no credentials for it in the docker config)" if login is None else ")")
            )
        if resp.status_code == 403:
            await resp.aclose()
            raise AuthError(f"registry {h.host} denied access to {ref.name} (403 forbidden)")
        return resp

    # --- API -------------------------------------------------------------------------------

    async def get_manifest(self, ref: Reference, obj: str | None = None) -> FetchedManifest:
        """Fetch the manifest or index for ``obj`` (default: the reference's digest or tag)."""
        obj = obj or ref.object
        resp = await self._request(ref, "GET", f"manifests/{obj}", {"Accept": ACCEPT})
        if resp.status_code == 404:
            raise NotFoundError(f"manifest for {ref.name}:{obj} not found in registry {ref.registry_host}")
        if resp.status_code != 200:
            raise RegistryError(f"registry {ref.registry_host}: GET manifest {obj}: HTTP {resp.status_code}")
        data = resp.content
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if obj.startswith("sha256:") and digest != obj:
            raise BlobError(f"manifest {ref.name}@{obj} arrived with digest {digest}")
        sent = resp.headers.get("docker-content-digest")
        if sent and sent.startswith("sha256:") and sent != digest:
            raise BlobError(f"manifest {ref.name}:{obj}: registry says {sent} but content hashes to {digest}")
        return FetchedManifest(data, resp.headers.get("content-type", "").split(";")[0].strip(), digest)

    async def resolve_digest(self, ref: Reference) -> str:
        """The digest a tag currently points at (``HEAD``, falling back to ``GET``)."""
        resp = await self._request(ref, "HEAD", f"manifests/{ref.object}", {"Accept": ACCEPT})
        await resp.aclose()
        if resp.status_code == 404:
            raise NotFoundError(f"manifest for {ref} not found in registry {ref.registry_host}")
        sent = resp.headers.get("docker-content-digest")
        if resp.status_code == 200 and sent:
            return sent
        return (await self.get_manifest(ref)).digest

    async def get_blob_bytes(
        self, ref: Reference, digest: str, size: int | None = None, limit: int = 64 << 20
    ) -> bytes:
        """A small blob (config) in memory, verified."""
        resp = await self._request(ref, "GET", f"blobs/{digest}")
        if resp.status_code == 404:
            raise NotFoundError(f"blob {digest} not found in {ref.name}")
        if resp.status_code != 200:
            raise RegistryError(f"registry {ref.registry_host}: GET blob {digest}: HTTP {resp.status_code}")
        data = resp.content
        if len(data) > limit:
            raise BlobError(f"blob {digest} is larger than {limit} bytes")
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if size is not None and len(data) != size:
            raise BlobError(f"blob {digest} from {ref.name}: got {len(data)} bytes, manifest says {size}")
        if actual != digest:
            raise BlobError(f"blob {digest} from {ref.name} arrived with digest {actual}")
        return data

    async def download_blob(
        self,
        ref: Reference,
        digest: str,
        size: int,
        sink: Callable[[bytes], Awaitable[None]],
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        """Stream a blob's bytes, in order and exactly once, into ``sink``.

        A broken connection is resumed with ``Range`` (a server that ignores it and sends the whole
        blob again has the part already passed on skipped). Returns only after the bytes were
        verified: exactly ``size`` of them, hashing to ``digest``; otherwise raises
        :class:`BlobError` (the consumer must not commit anything it built from them before then).
        """
        if not digest.startswith("sha256:"):
            raise BlobError(f"unsupported digest algorithm in {digest}")
        hasher = hashlib.sha256()
        received = 0
        attempt = 0
        while True:
            headers = {"Range": f"bytes={received}-"} if received else {}
            try:
                resp = await self._request(ref, "GET", f"blobs/{digest}", headers, stream=True)
                try:
                    if resp.status_code == 404:
                        raise NotFoundError(f"blob {digest} not found in {ref.name}")
                    if resp.status_code == 416 and received == size:
                        break
                    if resp.status_code not in (200, 206):
                        raise RegistryError(f"GET blob {digest}: HTTP {resp.status_code}")
                    skip = received if resp.status_code == 200 else 0
                    async for chunk in resp.aiter_raw():
                        if skip:
                            if len(chunk) <= skip:
                                skip -= len(chunk)
                                continue
                            chunk, skip = chunk[skip:], 0
                        received += len(chunk)
                        if received > size:
                            raise BlobError(
                                f"blob {digest} from {ref.name} is larger than the {size} bytes declared"
                            )
                        hasher.update(chunk)
                        await sink(chunk)
                        if on_progress:
                            on_progress(len(chunk))
                finally:
                    await resp.aclose()
                break
            except (httpx.TransportError, RegistryUnavailable) as exc:
                if attempt >= self.options.retries:
                    raise RegistryUnavailable(
                        f"download of {digest} from {ref.registry_host} failed after {attempt + 1} "
                        f"attempts ({received} of {size} bytes): {str(exc) or type(exc).__name__}",
                        retry_after=self.options.max_backoff,
                    ) from exc
                await self.options.sleep(self.backoff_delay(attempt))
                attempt += 1
        if received != size:
            raise BlobError(f"blob {digest} from {ref.name} is truncated: got {received} of {size} bytes")
        actual = "sha256:" + hasher.hexdigest()
        if actual != digest:
            raise BlobError(f"blob {digest} from {ref.name} arrived with digest {actual}")


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _pick_challenge(headers: list[str]) -> Challenge | None:
    challenges = [c for header in headers for c in parse_challenges(header)]
    for scheme in ("bearer", "basic"):
        for c in challenges:
            if c.scheme == scheme:
                return c
    return None


def _is_tls_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "SSL" in str(exc) or "certificate" in str(exc).lower()


__all__ = [
    "AuthError",
    "BlobError",
    "FetchedManifest",
    "OrcError",
    "RegistryClient",
    "RegistryError",
    "RegistryOptions",
    "RegistryUnavailable",
]
