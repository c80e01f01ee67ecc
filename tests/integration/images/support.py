"""Test plumbing for the images tests: OCI layouts built in Python, real registries, a cutting proxy.

* :func:`make_layer` / :func:`write_layout` build OCI image layouts (gzip, zstd or plain layers,
  single images or multi-platform indexes) from directories or hand-made tar entries.
* :class:`Registry` runs Debian's ``docker-registry`` (distribution 2.8) on 127.0.0.1, plain HTTP
  or TLS with token auth; :class:`TokenService` is the token issuer (JWT RS256 signed with a test
  key through ``openssl``, carrying its certificate in ``x5c``, which the registry verifies).
* :func:`skopeo_push` copies a layout into a registry.
* :class:`CuttingProxy` forwards to a registry and can cut or corrupt blob downloads.
Everything is torn down by the fixtures in ``conftest.py``, pass or fail.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.server
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_TYPES = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- layers and layouts ------------------------------------------------------------------------


@dataclass
class Layer:
    tar: bytes
    blob: bytes
    media_type: str

    @property
    def diff_id(self) -> str:
        return sha256(self.tar)

    @property
    def digest(self) -> str:
        return sha256(self.blob)


def compress(tar_bytes: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(tar_bytes, compresslevel=1, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor(level=3).compress(tar_bytes)
    return tar_bytes


def tar_of_dir(root: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(root.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(root)))
            info.mtime = 1_700_000_000
            if info.isreg():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return buf.getvalue()


@dataclass
class Entry:
    """One hand-made tar entry for hostile or edge-case layers."""

    name: str
    type: bytes = tarfile.REGTYPE
    data: bytes = b""
    linkname: str = ""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    devmajor: int = 0
    devminor: int = 0
    pax: dict[str, str] = field(default_factory=dict)


def tar_of_entries(entries: Iterable[Entry]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type = e.type
            info.mode = e.mode
            info.uid, info.gid = e.uid, e.gid
            info.linkname = e.linkname
            info.devmajor, info.devminor = e.devmajor, e.devminor
            info.mtime = 1_700_000_000
            info.pax_headers = dict(e.pax)
            if e.type == tarfile.REGTYPE:
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def make_layer(tar_bytes: bytes, compression: str = "gzip") -> Layer:
    return Layer(tar_bytes, compress(tar_bytes, compression), LAYER_TYPES[compression])


def random_layer(size: int, seed: int, files: int = 8, compression: str = "gzip") -> Layer:
    """A layer of ``files`` files holding ``size`` bytes of incompressible pseudo-random content."""
    rng = hashlib.sha256(str(seed).encode()).digest()
    per = size // files
    entries = [Entry(f"data{seed}/", tarfile.DIRTYPE, mode=0o755)]
    for i in range(files):
        entries.append(Entry(f"data{seed}/f{i}.bin", data=_random_bytes(per, rng + bytes([i]))))
    return make_layer(tar_of_entries(entries), compression)


def _random_bytes(n: int, seed: bytes) -> bytes:
    import random

    return random.Random(seed).randbytes(n)


@dataclass
class ImageSpec:
    layers: list[Layer]
    architecture: str = "amd64"
    os: str = "linux"
    variant: str | None = None
    config: dict[str, Any] = field(default_factory=dict)


def image_blobs(spec: ImageSpec) -> tuple[bytes, bytes, dict[str, bytes]]:
    """(manifest bytes, config bytes, all blobs by digest) for one image."""
    config_doc: dict[str, Any] = {
        "architecture": spec.architecture,
        "os": spec.os,
        "created": "2024-01-01T00:00:00Z",
        "config": spec.config or {"Cmd": ["/bin/sh"], "Env": ["PATH=/usr/bin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in spec.layers]},
    }
    if spec.variant:
        config_doc["variant"] = spec.variant
    config = json.dumps(config_doc, sort_keys=True).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [
                {"mediaType": layer.media_type, "digest": layer.digest, "size": len(layer.blob)}
                for layer in spec.layers
            ],
        },
        sort_keys=True,
    ).encode()
    blobs = {sha256(config): config, sha256(manifest): manifest}
    for layer in spec.layers:
        blobs[layer.digest] = layer.blob
    return manifest, config, blobs


def write_layout(
    dest: Path, images: list[ImageSpec], tag: str = "latest", as_index: bool | None = None
) -> str:
    """Write an OCI layout with ``images`` under ``tag``; several images become an index.

    Returns the digest of the top-level object (index or manifest).
    """
    (dest / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (dest / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index_entries = []
    for spec in images:
        manifest, _config, blobs = image_blobs(spec)
        for digest, data in blobs.items():
            (dest / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(data)
        platform = {"architecture": spec.architecture, "os": spec.os}
        if spec.variant:
            platform["variant"] = spec.variant
        index_entries.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": sha256(manifest),
                "size": len(manifest),
                "platform": platform,
            }
        )
    if as_index or (as_index is None and len(images) > 1):
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index_entries}).encode()
        (dest / "blobs" / "sha256" / sha256(index).split(":")[1]).write_bytes(index)
        top = {"mediaType": OCI_INDEX, "digest": sha256(index), "size": len(index)}
    else:
        top = dict(index_entries[0])
        top.pop("platform")
    top["annotations"] = {"org.opencontainers.image.ref.name": tag}
    (dest / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [top]}))
    return str(top["digest"])


# --- registry, token service, proxy ----------------------------------------------------------


def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


@dataclass
class Pki:
    """A test CA, a server certificate for 127.0.0.1 and a token-signing key with a self-signed cert."""

    dir: Path

    def create(self) -> Pki:
        d = self.dir
        d.mkdir(parents=True, exist_ok=True)
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"), "-days", "2",
             "-subj", "/CN=orc test CA"])  # fmt: skip
        run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(d / "server.key"), "-out", str(d / "server.csr"), "-subj", "/CN=127.0.0.1"])  # fmt: skip
        (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        run(["openssl", "x509", "-req", "-in", str(d / "server.csr"), "-CA", str(d / "ca.crt"),
             "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out", str(d / "server.crt"), "-days", "2",
             "-extfile", str(d / "ext.cnf")])  # fmt: skip
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "signing.key"),
             "-out", str(d / "signing.crt"), "-days", "2", "-subj", "/CN=orc test token issuer"])  # fmt: skip
        der = subprocess.run(
            ["openssl", "x509", "-in", str(d / "signing.crt"), "-outform", "DER"],
            check=True,
            capture_output=True,
        ).stdout
        (d / "signing.der").write_bytes(der)
        return self


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenService:
    """The bearer-token issuer for the TLS registry: user ``tester``/``secret`` gets pull+push."""

    USER, PASSWORD = "tester", "secret"
    SERVICE, ISSUER = "orc-test-registry", "orc-test-issuer"

    def __init__(self, pki: Pki) -> None:
        self.pki = pki
        self.requests: list[dict[str, Any]] = []
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                user = None
                header = self.headers.get("Authorization", "")
                if header.startswith("Basic "):
                    u, _, p = base64.b64decode(header[6:]).decode().partition(":")
                    if (u, p) != (service.USER, service.PASSWORD):
                        self.send_response(401)
                        self.end_headers()
                        return
                    user = u
                service.requests.append({"user": user, "scope": query.get("scope", [])})
                access = []
                for scope in query.get("scope", []):
                    kind, _, rest = scope.partition(":")
                    name, _, actions = rest.rpartition(":")
                    if user is not None:
                        access.append({"type": kind, "name": name, "actions": actions.split(",")})
                token = service.sign(user or "", access)
                body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def sign(self, subject: str, access: list[dict[str, Any]]) -> str:
        now = int(time.time())
        header = {
            "typ": "JWT",
            "alg": "RS256",
            "x5c": [base64.b64encode((self.pki.dir / "signing.der").read_bytes()).decode()],
        }
        claims = {
            "iss": self.ISSUER, "sub": subject, "aud": self.SERVICE, "exp": now + 300, "nbf": now - 10,
            "iat": now, "jti": os.urandom(8).hex(), "access": access,
        }  # fmt: skip
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        sig = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.pki.dir / "signing.key")],
            input=signing_input.encode(), check=True, capture_output=True,
        ).stdout  # fmt: skip
        return f"{signing_input}.{_b64url(sig)}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Registry:
    """A ``docker-registry`` process on 127.0.0.1 with its own storage dir; ``close()`` kills it.

    Plain HTTP, or TLS with ``pki``; auth by bearer tokens from ``tokens`` or by ``basic_auth``
    (htpasswd with a bcrypt hash).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        pki: Pki | None = None,
        tokens: TokenService | None = None,
        basic_auth: tuple[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.pki = pki
        storage = workdir / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        lines = [
            "version: 0.1",
            "log: {level: error, accesslog: {disabled: true}}",
            f"storage: {{filesystem: {{rootdirectory: {storage}}}, delete: {{enabled: true}}}}",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
        ]
        if pki is not None:
            lines += [f"  tls: {{certificate: {pki.dir / 'server.crt'}, key: {pki.dir / 'server.key'}}}"]
        if tokens is not None:
            lines += [
                "auth:",
                "  token:",
                f"    realm: {tokens.realm}",
                f"    service: {tokens.SERVICE}",
                f"    issuer: {tokens.ISSUER}",
                f"    rootcertbundle: {pki.dir / 'signing.crt' if pki else ''}",
            ]
        if basic_auth is not None:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                import crypt  # bcrypt via libxcrypt (Python 3.11); htpasswd wants bcrypt hashes

            user, password = basic_auth
            (workdir / "htpasswd").write_text(
                f"{user}:{crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))}\n"
            )
            lines += ["auth:", f"  htpasswd: {{realm: orc-test, path: {workdir / 'htpasswd'}}}"]
        (workdir / "config.yml").write_text("\n".join(lines) + "\n")
        self.log = open(workdir / "registry.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["docker-registry", "serve", str(workdir / "config.yml")],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.close()
            raise

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def storage(self) -> Path:
        return self.workdir / "storage"

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"registry exited: {(self.workdir / 'registry.log').read_text()}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("registry did not start")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def blob_data_path(self, digest: str) -> Path:
        hex_part = digest.split(":")[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hex_part[:2] / hex_part / "data"


def skopeo_push(
    layout: Path,
    tag: str,
    registry: Registry,
    repo: str,
    *,
    creds: str | None = None,
    docker_format: bool = False,
) -> None:
    """Copy ``oci:layout:tag`` to the registry as is, or converted to Docker schema 2 (``docker_format``)."""
    cmd = ["skopeo", "copy", "--all", "-q"]
    cmd += ["--format", "v2s2"] if docker_format else ["--preserve-digests"]
    if registry.pki is not None:
        certs = registry.workdir / "skopeo-certs"
        certs.mkdir(exist_ok=True)
        shutil.copy(registry.pki.dir / "ca.crt", certs / "ca.crt")
        cmd += ["--dest-cert-dir", str(certs)]
    else:
        cmd += ["--dest-tls-verify=false"]
    if creds:
        cmd += ["--dest-creds", creds]
    cmd += [f"oci:{layout}:{tag}", f"docker://{registry.host}/{repo}:{tag}"]
    run(cmd, env={**os.environ, "HOME": str(registry.workdir)})


class CuttingProxy:
    """A plain-HTTP forwarder to a registry that can misbehave on blob downloads.

    ``cut_after``: close the connection after that many body bytes of a blob (``cut_times`` times,
    then behave). ``corrupt``: flip one byte in every blob body. ``unavailable_times``: answer that
    many requests with 503 first. Counts blob requests per digest.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.cut_after: int | None = None
        self.cut_times = 1 << 30
        self.corrupt = False
        self.unavailable_times = 0  # answer this many requests with 503 first
        self.blob_requests: dict[str, int] = {}
        self.ranges: list[str] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self, method: str) -> None:
                import http.client

                if proxy.unavailable_times > 0:
                    proxy.unavailable_times -= 1
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    return

                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(method, self.path, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                is_blob = "/blobs/sha256:" in self.path and method == "GET" and resp.status in (200, 206)
                if is_blob:
                    digest = self.path.rsplit("/", 1)[1]
                    proxy.blob_requests[digest] = proxy.blob_requests.get(digest, 0) + 1
                    if "Range" in self.headers:
                        proxy.ranges.append(self.headers["Range"])
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding"):
                        self.send_header(k, v)
                self.send_header("Connection", "close")
                self.end_headers()
                conn.close()
                if method == "HEAD":
                    return
                if is_blob and proxy.corrupt and body:
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                if (
                    is_blob
                    and proxy.cut_after is not None
                    and proxy.cut_times > 0
                    and len(body) > proxy.cut_after
                ):
                    proxy.cut_times -= 1
                    self.wfile.write(body[: proxy.cut_after])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._forward("GET")

            def do_HEAD(self) -> None:
                self._forward("HEAD")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False
