"""Registry authentication pieces: challenges, stored credentials and the bearer-token cache.

Owned here: :func:`parse_challenges` (``WWW-Authenticate``), :class:`Credentials` read from a
Docker ``config.json`` (``credHelpers``, ``credsStore``, then ``auths`` with ``auth`` or
``username``/``password``; path and helper runner injectable) and
:class:`TokenCache` (expiry on an injected clock). The registry client calls them; nothing here does
network I/O (a credential helper is a local program).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import PermanentError

_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')

DOCKER_HUB_AUTH_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: ``Bearer realm="…",service="…",scope="…"``."""

    scheme: str
    params: dict[str, str]


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value into its challenges (scheme lowercased)."""
    out: list[Challenge] = []
    pos = 0
    text = header.strip()
    while pos < len(text):
        m = re.compile(r"\s*([A-Za-z][A-Za-z0-9_-]*)\s*").match(text, pos)
        if not m:
            break
        scheme = m.group(1).lower()
        pos = m.end()
        params: dict[str, str] = {}
        while pos < len(text):
            pm = _PARAM_RE.match(text, pos)
            if not pm:
                break
            # a bare token followed by '=' is a param; a token followed by space is the next scheme
            params[pm.group(1).lower()] = (
                re.sub(r"\\(.)", r"\1", pm.group(2)) if pm.group(2) is not None else pm.group(3)
            )
            pos = pm.end()
        out.append(Challenge(scheme, params))
    return out


class CredentialsError(PermanentError):
    """The Docker config file exists but cannot be read."""


@dataclass(frozen=True)
class Login:
    username: str
    password: str


HelperRunner = Callable[[str, str], "str | None"]


def run_credential_helper(helper: str, server: str) -> str | None:
    """Run ``docker-credential-<helper> get`` for ``server``; its JSON answer, or None if it has none."""
    import shutil
    import subprocess

    program = shutil.which(f"docker-credential-{helper}")
    if program is None:
        raise CredentialsError(f"credential helper docker-credential-{helper} is not on PATH")
    result = subprocess.run([program, "get"], input=server, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        if "credentials not found" in (result.stdout + result.stderr).lower():
            return None
        raise CredentialsError(
            f"docker-credential-{helper} get {server}: {result.stderr.strip() or result.stdout.strip()}"
        )
    return result.stdout


class Credentials:
    """Basic credentials per registry host from a Docker ``config.json`` (read lazily, once).

    As Docker: a ``credHelpers`` entry for the host wins, then ``credsStore`` (for every host), then
    inline ``auths``. Helpers are run through ``helper_runner`` (injectable); identity tokens
    (``<token>`` user) are not used.
    """

    def __init__(self, path: Path | None, helper_runner: HelperRunner = run_credential_helper) -> None:
        self.path = path
        self.helper_runner = helper_runner
        self._auths: dict[str, Login] | None = None
        self._helpers: dict[str, str] = {}
        self._store: str | None = None
        self._asked: dict[str, Login | None] = {}

    def _load(self) -> dict[str, Login]:
        if self._auths is not None:
            return self._auths
        auths: dict[str, Login] = {}
        if self.path is not None and self.path.exists():
            try:
                doc = json.loads(self.path.read_text())
            except (OSError, ValueError) as exc:
                raise CredentialsError(f"cannot read registry credentials from {self.path}: {exc}") from exc
            for key, entry in (doc.get("auths") or {}).items():
                if not isinstance(entry, dict):
                    continue
                login = _login_from_entry(entry)
                if login is not None:
                    auths[_host_key(key)] = login
            self._helpers = {_host_key(k): str(v) for k, v in (doc.get("credHelpers") or {}).items() if v}
            self._store = str(doc["credsStore"]) if doc.get("credsStore") else None
        self._auths = auths
        return auths

    def lookup(self, host: str) -> Login | None:
        auths = self._load()
        hub = host in ("registry-1.docker.io", "docker.io", "index.docker.io")
        helper = self._helpers.get("index.docker.io" if hub else host) or self._store
        if helper is not None:
            return self._from_helper(helper, DOCKER_HUB_AUTH_KEYS[0] if hub else host)
        if hub:
            for key in DOCKER_HUB_AUTH_KEYS:
                if _host_key(key) in auths:
                    return auths[_host_key(key)]
        return auths.get(host)

    def _from_helper(self, helper: str, server: str) -> Login | None:
        if server in self._asked:
            return self._asked[server]
        answer = self.helper_runner(helper, server)
        login = None
        if answer:
            try:
                doc = json.loads(answer)
            except ValueError as exc:
                raise CredentialsError(f"docker-credential-{helper} sent no JSON for {server}") from exc
            user, secret = str(doc.get("Username") or ""), str(doc.get("Secret") or "")
            if user and user != "<token>" and secret:
                login = Login(user, secret)
        self._asked[server] = login
        return login


def _host_key(key: str) -> str:
    key = re.sub(r"^https?://", "", key).split("/")[0]
    return key


def _login_from_entry(entry: dict[str, object]) -> Login | None:
    raw = entry.get("auth")
    if isinstance(raw, str) and raw:
        try:
            user, sep, password = base64.b64decode(raw).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return Login(user, password) if sep else None
    username, secret = entry.get("username"), entry.get("password")
    if isinstance(username, str) and isinstance(secret, str):
        return Login(username, secret)
    return None


class TokenCache:
    """Bearer tokens keyed by (realm, service, scope), dropped 10 s before they expire."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._tokens: dict[tuple[str, str, str], tuple[str, float]] = {}

    def get(self, realm: str, service: str, scope: str) -> str | None:
        hit = self._tokens.get((realm, service, scope))
        if hit is None:
            return None
        token, expires = hit
        if self.clock() >= expires - 10:
            del self._tokens[(realm, service, scope)]
            return None
        return token

    def put(self, realm: str, service: str, scope: str, token: str, expires_in: float) -> None:
        self._tokens[(realm, service, scope)] = (token, self.clock() + max(expires_in, 60.0))

    def drop(self, realm: str, service: str, scope: str) -> None:
        self._tokens.pop((realm, service, scope), None)
