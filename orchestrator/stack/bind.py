"""PURE. Binding: the canonical Compose document → the frozen ``orchestrator.model.Stack``.

``bind(document, config_hashes=...)`` takes the project as ``docker-compose config --format
json`` prints it (the loader's canonical long form: durations like ``"1m30s"``, sizes as decimal
strings, ports/volumes/depends_on as mappings) and returns a ``Stack``. Values are taken as they
are: ``config`` doubles every ``$`` in what it prints, so a printed document must be unescaped
(``$$`` → ``$``) first; the loader's in-memory document already holds the real values. It also
accepts the few short forms Compose leaves in its canonical output (``tmpfs`` strings,
``volumes_from``/``links`` strings, ``extra_hosts`` lines) and, leniently, raw values where the
conversion is unambiguous (``"64m"`` for a size, a string ``command``), so hand-written test
documents bind too.

Values that passed schema validation but cannot be bound (an unparsable duration, a restart
policy Docker does not know, a negative port) are collected, all of them, and raised as one
``StackError`` whose problems carry the dotted path (``services.web.healthcheck.interval``).
Keys orc does not model go to ``unsupported`` maps (non-empty values only); ``x-*`` keys to
``extensions``.

Called by the loader (``orchestrator.stack``) once the document is canonical; the config hash
of each service comes from the loader too (``config_hashes``: service name → hash).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from orchestrator.errors import Problem, StackError
from orchestrator.model import (
    BindOptions,
    BlkioConfig,
    Build,
    Dependency,
    Deploy,
    DeployRestartPolicy,
    Device,
    DeviceRequest,
    ExtraHost,
    FileObject,
    FileRef,
    FrozenDict,
    Healthcheck,
    IPAMConfig,
    IPAMPool,
    Link,
    Logging,
    Mount,
    Network,
    NetworkAttachment,
    PortSpec,
    ResourceSpec,
    Service,
    Stack,
    ThrottleDevice,
    TmpfsOptions,
    Ulimit,
    Volume,
    VolumeOptions,
    VolumesFrom,
    WeightDevice,
    freeze,
    parse_bytes,
    parse_duration,
    restart_name,
)

T = TypeVar("T")

_MOUNT_TYPES = ("bind", "volume", "tmpfs", "npipe", "image", "cluster")
_CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")
# Top-level keys that carry no meaning any more and that Compose drops silently.
_IGNORED_TOP_LEVEL = ("version",)
_TOP_LEVEL_KEYS = ("name", "services", "networks", "volumes", "secrets", "configs", *_IGNORED_TOP_LEVEL)


class _Bad(Exception):
    """One value that cannot be bound; caught per key so that every problem is reported."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def bind(
    document: Mapping[str, Any],
    *,
    config_hashes: Mapping[str, str],
    working_dir: str | None = None,
    compose_files: tuple[str, ...] = (),
) -> Stack:
    """The Stack described by the canonical ``document``; StackError listing every bad value.

    ``config_hashes`` must hold a hash for every service (a missing one is a programming error,
    ValueError). ``working_dir`` and ``compose_files`` are not part of Compose's JSON output; the
    loader passes what it knows (they end up in container labels)."""
    binder = _Binder(config_hashes)
    stack = binder.stack(document, working_dir=working_dir, compose_files=compose_files)
    if binder.problems:
        raise StackError(binder.problems)
    return stack


# --- scalar conversions: (value, path) -> value, raising _Bad ----------------------------------


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _str(value: Any, path: str) -> str:
    if isinstance(value, str):
        return value
    raise _Bad(path, f"expected a string, got {_type_name(value)}")


def _scalar_str(value: Any, path: str) -> str:
    """A string where Compose also takes a number (ports, user ids, label values)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise _Bad(path, f"expected a string or a number, got {_type_name(value)}")


def _int(value: Any, path: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value, 10)
        except ValueError:
            pass
    raise _Bad(path, f"expected an integer, got {value!r}")


def _non_negative_int(value: Any, path: str) -> int:
    number = _int(value, path)
    if number < 0:
        raise _Bad(path, f"must be greater than or equal to 0, got {number}")
    return number


def _float(value: Any, path: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise _Bad(path, f"expected a number, got {value!r}")


def _bool(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _Bad(path, f"expected a boolean, got {value!r}")


def _duration(value: Any, path: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise _Bad(path, str(exc)) from exc


def _bytes(value: Any, path: str) -> int:
    try:
        return parse_bytes(value)
    except ValueError as exc:
        raise _Bad(path, str(exc)) from exc


def _file_mode(value: Any, path: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value, 8)
        except ValueError:
            pass
    raise _Bad(path, f'invalid file mode {value!r}: expected an octal string such as "0440"')


def _list(value: Any, path: str) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    raise _Bad(path, f"expected a list, got {_type_name(value)}")


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    raise _Bad(path, f"expected a mapping, got {_type_name(value)}")


def _strings(value: Any, path: str) -> tuple[str, ...]:
    """A list of strings; a lone string counts as a one-item list (Compose's StringList)."""
    if isinstance(value, str):
        return (value,)
    return tuple(_scalar_str(item, f"{path}[{i}]") for i, item in enumerate(_list(value, path)))


def _str_map(value: Any, path: str) -> FrozenDict[str, str]:
    """A mapping of strings, or a ``["KEY=VALUE", ...]`` list (labels, sysctls, options)."""
    if isinstance(value, Mapping):
        return FrozenDict(
            (str(key), "" if item is None else _scalar_str(item, f"{path}.{key}"))
            for key, item in value.items()
        )
    result: dict[str, str] = {}
    for i, item in enumerate(_list(value, path)):
        key, _, text = _scalar_str(item, f"{path}[{i}]").partition("=")
        result[key] = text
    return FrozenDict(result)


def _env_map(value: Any, path: str) -> FrozenDict[str, str | None]:
    """Like ``_str_map`` but a key without a value stays None (declared, not set)."""
    if isinstance(value, Mapping):
        return FrozenDict(
            (str(key), None if item is None else _scalar_str(item, f"{path}.{key}"))
            for key, item in value.items()
        )
    result: dict[str, str | None] = {}
    for i, item in enumerate(_list(value, path)):
        key, equals, text = _scalar_str(item, f"{path}[{i}]").partition("=")
        result[key] = text if equals else None
    return FrozenDict(result)


def _command(value: Any, path: str) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            return tuple(shlex.split(value))
        except ValueError as exc:
            raise _Bad(path, f"cannot split command {value!r}: {exc}") from exc
    return tuple(_scalar_str(item, f"{path}[{i}]") for i, item in enumerate(_list(value, path)))


def _restart(value: Any, path: str) -> str:
    text = _str(value, path)
    name, colon, count = text.partition(":")
    try:
        restart_name(name)
    except ValueError as exc:
        raise _Bad(path, str(exc)) from exc
    if colon and (name != "on-failure" or not count.isdigit()):
        raise _Bad(
            path, f'invalid restart policy "{text}": only on-failure takes a retry count (on-failure:3)'
        )
    return text


def _pull_policy(value: Any, path: str) -> str:
    text = _str(value, path)
    if text.startswith("every_"):
        try:
            parse_duration(text[len("every_") :])
        except ValueError as exc:
            raise _Bad(path, f"invalid pull_policy {text!r}: {exc}") from exc
    return text


def _extra_hosts(value: Any, path: str) -> tuple[ExtraHost, ...]:
    hosts: list[ExtraHost] = []
    if isinstance(value, Mapping):
        for host, addresses in value.items():
            items = [addresses] if not isinstance(addresses, list | tuple) else list(addresses)
            for i, address in enumerate(items):
                text = "" if address is None else _scalar_str(address, f"{path}.{host}[{i}]")
                hosts.extend(ExtraHost(str(host), part) for part in text.split(","))
        return tuple(hosts)
    for i, item in enumerate(_list(value, path)):
        line = _scalar_str(item, f"{path}[{i}]")
        for separator in ("=", ":"):
            host, found, addresses = line.partition(separator)
            if found:
                hosts.extend(ExtraHost(host, address) for address in addresses.split(","))
                break
        else:
            raise _Bad(f"{path}[{i}]", f"invalid extra host {line!r}: missing IP address (host=ip)")
    return tuple(hosts)


class _Binder:
    """Holds the problems found so far; one per ``bind`` call."""

    def __init__(self, config_hashes: Mapping[str, str]) -> None:
        self.config_hashes = config_hashes
        self.problems: list[Problem] = []

    def take(
        self, raw: Mapping[str, Any], key: str, path: str, convert: Callable[[Any, str], T], default: T
    ) -> T:
        """``convert(raw[key])``, or ``default`` when absent or null or (recorded) unbindable."""
        value = raw.get(key)
        if value is None:
            return default
        try:
            return convert(value, f"{path}.{key}")
        except _Bad as bad:
            self.problems.append(Problem(bad.message, path=bad.path))
            return default

    # --- the project --------------------------------------------------------------------------

    def stack(
        self, document: Mapping[str, Any], *, working_dir: str | None, compose_files: tuple[str, ...]
    ) -> Stack:
        if not isinstance(document, Mapping):
            raise StackError(f"the project document must be a mapping, got {_type_name(document)}")
        name = document.get("name")
        if not isinstance(name, str) or not name:
            self.problems.append(Problem("the project has no name", path="name"))
            name = ""
        extensions: dict[str, Any] = {}
        unsupported: dict[str, Any] = {}
        for key, value in document.items():
            if key.startswith("x-"):
                extensions[key] = freeze(value)
            elif key not in _TOP_LEVEL_KEYS and _meaningful(value):
                unsupported[key] = freeze(value)

        services: dict[str, Service] = {}
        for service_name, raw in self._section(document, "services").items():
            if service_name not in self.config_hashes:
                raise ValueError(f"bind: no config hash given for service {service_name!r}")
            path = f"services.{service_name}"
            if not isinstance(raw, Mapping):
                self.problems.append(Problem(f"expected a mapping, got {_type_name(raw)}", path=path))
                continue
            services[service_name] = _ServiceBinder(self, service_name, path).bind(
                raw, self.config_hashes[service_name]
            )
        networks = {
            key: self._network(name, key, raw, unsupported)
            for key, raw in self._section(document, "networks").items()
        }
        volumes = {
            key: self._volume(name, key, raw, unsupported)
            for key, raw in self._section(document, "volumes").items()
        }
        secrets = {
            key: self._file_object(name, "secrets", key, raw, unsupported)
            for key, raw in self._section(document, "secrets").items()
        }
        configs = {
            key: self._file_object(name, "configs", key, raw, unsupported)
            for key, raw in self._section(document, "configs").items()
        }
        return Stack(
            name=name,
            working_dir=working_dir,
            compose_files=tuple(compose_files),
            services=FrozenDict(services),
            networks=FrozenDict(networks),
            volumes=FrozenDict(volumes),
            secrets=FrozenDict(secrets),
            configs=FrozenDict(configs),
            extensions=FrozenDict(extensions),
            unsupported=FrozenDict(unsupported),
        )

    def _section(self, document: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = document.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.problems.append(Problem(f"expected a mapping, got {_type_name(value)}", path=key))
            return {}
        return value

    def _object(self, raw: Any, path: str) -> Mapping[str, Any]:
        if raw is None:
            return {}
        if not isinstance(raw, Mapping):
            self.problems.append(Problem(f"expected a mapping, got {_type_name(raw)}", path=path))
            return {}
        return raw

    def _leftovers(
        self, raw: Mapping[str, Any], known: tuple[str, ...], path: str, unsupported: dict[str, Any]
    ) -> FrozenDict[str, Any]:
        """Record unknown keys of ``raw`` in ``unsupported``; return its ``x-*`` extensions."""
        extensions: dict[str, Any] = {}
        for key, value in raw.items():
            if key.startswith("x-"):
                extensions[key] = freeze(value)
            elif key not in known and _meaningful(value):
                unsupported[f"{path}.{key}"] = freeze(value)
        return FrozenDict(extensions)

    def _external(self, raw: Mapping[str, Any], path: str) -> tuple[bool, str | None]:
        """``external: true``, or the legacy ``external: {name: X}`` (returns X as the name)."""
        value = raw.get("external")
        if isinstance(value, Mapping):
            legacy_name = value.get("name")
            return True, legacy_name if isinstance(legacy_name, str) else None
        return self.take(raw, "external", path, _bool, False), None

    def _real_name(self, project: str, key: str, raw: Mapping[str, Any], path: str, external: bool) -> str:
        given = self.take(raw, "name", path, _str, "")
        if given:
            return given
        return key if external else f"{project}_{key}"

    def _network(self, project: str, key: str, raw: Any, unsupported: dict[str, Any]) -> Network:
        path = f"networks.{key}"
        raw = self._object(raw, path)
        external, legacy_name = self._external(raw, path)
        ipam_raw = self._object(raw.get("ipam"), f"{path}.ipam")
        ipam_path = f"{path}.ipam"
        pools = []
        pool_list: list[Any] = self.take(ipam_raw, "config", ipam_path, _list, [])
        for i, pool_value in enumerate(pool_list):
            pool_path = f"{ipam_path}.config[{i}]"
            pool = self._object(pool_value, pool_path)
            self._leftovers(pool, ("subnet", "gateway", "ip_range", "aux_addresses"), pool_path, unsupported)
            pools.append(
                IPAMPool(
                    subnet=self.take(pool, "subnet", pool_path, _str, None),
                    gateway=self.take(pool, "gateway", pool_path, _str, None),
                    ip_range=self.take(pool, "ip_range", pool_path, _str, None),
                    aux_addresses=self.take(pool, "aux_addresses", pool_path, _str_map, FrozenDict()),
                )
            )
        self._leftovers(ipam_raw, ("driver", "config", "options"), ipam_path, unsupported)
        known = (
            "name",
            "driver",
            "driver_opts",
            "ipam",
            "external",
            "internal",
            "attachable",
            "enable_ipv4",
            "enable_ipv6",
            "labels",
        )
        return Network(
            key=key,
            name=legacy_name or self._real_name(project, key, raw, path, external),
            driver=self.take(raw, "driver", path, _str, None),
            driver_opts=self.take(raw, "driver_opts", path, _str_map, FrozenDict()),
            ipam=IPAMConfig(
                driver=self.take(ipam_raw, "driver", ipam_path, _str, None),
                pools=tuple(pools),
                options=self.take(ipam_raw, "options", ipam_path, _str_map, FrozenDict()),
            ),
            external=external,
            internal=self.take(raw, "internal", path, _bool, False),
            attachable=self.take(raw, "attachable", path, _bool, False),
            enable_ipv4=self.take(raw, "enable_ipv4", path, _bool, None),
            enable_ipv6=self.take(raw, "enable_ipv6", path, _bool, None),
            labels=self.take(raw, "labels", path, _str_map, FrozenDict()),
            extensions=self._leftovers(raw, known, path, unsupported),
        )

    def _volume(self, project: str, key: str, raw: Any, unsupported: dict[str, Any]) -> Volume:
        path = f"volumes.{key}"
        raw = self._object(raw, path)
        external, legacy_name = self._external(raw, path)
        known = ("name", "driver", "driver_opts", "external", "labels")
        return Volume(
            key=key,
            name=legacy_name or self._real_name(project, key, raw, path, external),
            driver=self.take(raw, "driver", path, _str, None),
            driver_opts=self.take(raw, "driver_opts", path, _str_map, FrozenDict()),
            external=external,
            labels=self.take(raw, "labels", path, _str_map, FrozenDict()),
            extensions=self._leftovers(raw, known, path, unsupported),
        )

    def _file_object(
        self, project: str, section: str, key: str, raw: Any, unsupported: dict[str, Any]
    ) -> FileObject:
        path = f"{section}.{key}"
        raw = self._object(raw, path)
        external, legacy_name = self._external(raw, path)
        known = (
            "name",
            "file",
            "environment",
            "content",
            "external",
            "labels",
            "driver",
            "driver_opts",
            "template_driver",
        )
        return FileObject(
            key=key,
            name=legacy_name or self._real_name(project, key, raw, path, external),
            file=self.take(raw, "file", path, _str, None),
            environment=self.take(raw, "environment", path, _str, None),
            content=self.take(raw, "content", path, _str, None),
            external=external,
            labels=self.take(raw, "labels", path, _str_map, FrozenDict()),
            driver=self.take(raw, "driver", path, _str, None),
            driver_opts=self.take(raw, "driver_opts", path, _str_map, FrozenDict()),
            template_driver=self.take(raw, "template_driver", path, _str, None),
            extensions=self._leftovers(raw, known, path, unsupported),
        )


def _meaningful(value: Any) -> bool:
    """Whether an unmodelled key changes anything (Compose prints ``placement: {}`` everywhere)."""
    return value not in (None, "", [], {}, False)


class _ServiceBinder:
    """Binds one service; unmodelled keys are recorded relative to the service (``build.ssh``)."""

    def __init__(self, binder: _Binder, name: str, path: str) -> None:
        self.binder = binder
        self.name = name
        self.path = path
        self.unsupported: dict[str, Any] = {}

    def take(
        self, raw: Mapping[str, Any], key: str, path: str, convert: Callable[[Any, str], T], default: T
    ) -> T:
        return self.binder.take(raw, key, path, convert, default)

    def leftovers(self, raw: Mapping[str, Any], known: tuple[str, ...], path: str) -> FrozenDict[str, Any]:
        return self.binder._leftovers(raw, known, path, self.unsupported)

    def relative(self, path: str) -> str:
        return path[len(self.path) + 1 :]

    def bind(self, raw: Mapping[str, Any], config_hash: str) -> Service:
        fields: dict[str, Any] = {"name": self.name, "config_hash": config_hash}
        for key, value in raw.items():
            if value is None or key not in _SERVICE_KEYS:
                continue
            convert = _SIMPLE_SERVICE_KEYS.get(key) or getattr(self, _STRUCTURED_SERVICE_KEYS[key])
            try:
                fields[key] = convert(value, f"{self.path}.{key}")
            except _Bad as bad:
                self.binder.problems.append(Problem(bad.message, path=bad.path))
        extensions: dict[str, Any] = {}
        for key, value in raw.items():
            if key.startswith("x-"):
                extensions[key] = freeze(value)
            elif key not in _SERVICE_KEYS and _meaningful(value):
                self.unsupported[key] = freeze(value)
        fields["extensions"] = FrozenDict(extensions)
        fields["unsupported"] = FrozenDict(sorted(self.unsupported.items()))
        return Service(**fields)

    # --- structured keys ----------------------------------------------------------------------

    def build(self, value: Any, path: str) -> Build:
        if isinstance(value, str):
            return Build(context=value)
        raw = _mapping(value, path)
        known = (
            "context",
            "dockerfile",
            "dockerfile_inline",
            "args",
            "target",
            "labels",
            "tags",
            "platforms",
            "network",
            "cache_from",
            "cache_to",
            "no_cache",
            "pull",
            "shm_size",
            "extra_hosts",
            "additional_contexts",
            "privileged",
        )
        self.leftovers(raw, known, self.relative(path))
        return Build(
            context=self.take(raw, "context", path, _str, "."),
            dockerfile=self.take(raw, "dockerfile", path, _str, None),
            dockerfile_inline=self.take(raw, "dockerfile_inline", path, _str, None),
            args=self.take(raw, "args", path, _env_map, FrozenDict()),
            target=self.take(raw, "target", path, _str, None),
            labels=self.take(raw, "labels", path, _str_map, FrozenDict()),
            tags=self.take(raw, "tags", path, _strings, ()),
            platforms=self.take(raw, "platforms", path, _strings, ()),
            network=self.take(raw, "network", path, _str, None),
            cache_from=self.take(raw, "cache_from", path, _strings, ()),
            cache_to=self.take(raw, "cache_to", path, _strings, ()),
            no_cache=self.take(raw, "no_cache", path, _bool, False),
            pull=self.take(raw, "pull", path, _bool, False),
            shm_size=self.take(raw, "shm_size", path, _bytes, None),
            extra_hosts=self.take(raw, "extra_hosts", path, _extra_hosts, ()),
            additional_contexts=self.take(raw, "additional_contexts", path, _str_map, FrozenDict()),
            privileged=self.take(raw, "privileged", path, _bool, False),
        )

    def mounts(self, value: Any, path: str) -> tuple[Mount, ...]:
        return tuple(self.mount(item, f"{path}[{i}]") for i, item in enumerate(_list(value, path)))

    def mount(self, value: Any, path: str) -> Mount:
        if isinstance(value, str):
            raise _Bad(path, f"expected the long volume syntax (a mapping), got the string {value!r}")
        raw = _mapping(value, path)
        kind = _str(raw.get("type"), f"{path}.type")
        if kind not in _MOUNT_TYPES:
            raise _Bad(f"{path}.type", f'unknown mount type "{kind}" (expected {", ".join(_MOUNT_TYPES)})')
        target = self.take(raw, "target", path, _str, "")
        if not target:
            raise _Bad(f"{path}.target", "a mount needs a target path")
        known = ("type", "source", "target", "read_only", "consistency", "bind", "volume", "tmpfs", "image")
        self.leftovers(raw, known, self.relative(path))
        bind_options = volume_options = tmpfs_options = None
        image_subpath = None
        if kind == "bind":
            sub = self.binder._object(raw.get("bind"), f"{path}.bind")
            self.leftovers(
                sub,
                ("propagation", "create_host_path", "selinux", "recursive"),
                self.relative(f"{path}.bind"),
            )
            bind_options = BindOptions(
                propagation=self.take(sub, "propagation", f"{path}.bind", _str, None),
                create_host_path=self.take(sub, "create_host_path", f"{path}.bind", _bool, False),
                selinux=self.take(sub, "selinux", f"{path}.bind", _str, None),
                recursive=self.take(sub, "recursive", f"{path}.bind", _str, None),
            )
        elif kind == "volume":
            sub = self.binder._object(raw.get("volume"), f"{path}.volume")
            self.leftovers(sub, ("nocopy", "subpath", "labels"), self.relative(f"{path}.volume"))
            volume_options = VolumeOptions(
                nocopy=self.take(sub, "nocopy", f"{path}.volume", _bool, False),
                subpath=self.take(sub, "subpath", f"{path}.volume", _str, None),
                labels=self.take(sub, "labels", f"{path}.volume", _str_map, FrozenDict()),
            )
        elif kind == "tmpfs":
            sub = self.binder._object(raw.get("tmpfs"), f"{path}.tmpfs")
            self.leftovers(sub, ("size", "mode"), self.relative(f"{path}.tmpfs"))
            tmpfs_options = TmpfsOptions(
                size=self.take(sub, "size", f"{path}.tmpfs", _bytes, None),
                mode=self.take(sub, "mode", f"{path}.tmpfs", _file_mode, None),
            )
        elif kind == "image":
            sub = self.binder._object(raw.get("image"), f"{path}.image")
            image_subpath = self.take(sub, "subpath", f"{path}.image", _str, None)
        return Mount(
            type=kind,  # type: ignore[arg-type]  # checked against _MOUNT_TYPES above
            target=target,
            source=self.take(raw, "source", path, _str, None) or None,
            read_only=self.take(raw, "read_only", path, _bool, False),
            consistency=self.take(raw, "consistency", path, _str, None),
            bind=bind_options,
            volume=volume_options,
            tmpfs=tmpfs_options,
            image_subpath=image_subpath,
        )

    def tmpfs(self, value: Any, path: str) -> tuple[Mount, ...]:
        """``tmpfs: ["/run", "/tmp:size=1m,mode=1777,noexec"]``."""
        mounts = []
        for i, item in enumerate(_strings(value, path)):
            target, _, option_text = item.partition(":")
            size = mode = None
            options: list[str] = []
            for option in filter(None, option_text.split(",")):
                key, _, text = option.partition("=")
                if key == "size":
                    size = _bytes(text, f"{path}[{i}]")
                elif key == "mode":
                    mode = _file_mode(text, f"{path}[{i}]")
                else:
                    options.append(option)
            mounts.append(
                Mount(
                    type="tmpfs",
                    target=target,
                    tmpfs=TmpfsOptions(size=size, mode=mode, options=tuple(options)),
                )
            )
        return tuple(mounts)

    def volumes_from(self, value: Any, path: str) -> tuple[VolumesFrom, ...]:
        result = []
        for i, item in enumerate(_strings(value, path)):
            kind = "service"
            text = item
            if item.startswith("container:"):
                kind, text = "container", item[len("container:") :]
            source, _, mode = text.partition(":")
            if mode not in ("", "ro", "rw") or not source:
                raise _Bad(
                    f"{path}[{i}]", f"invalid volumes_from {item!r}: expected [container:]NAME[:ro|:rw]"
                )
            result.append(VolumesFrom(source=source, kind=kind, read_only=mode == "ro"))  # type: ignore[arg-type]
        return tuple(result)

    def file_refs(self, value: Any, path: str) -> tuple[FileRef, ...]:
        refs = []
        for i, item in enumerate(_list(value, path)):
            item_path = f"{path}[{i}]"
            if isinstance(item, str):
                refs.append(FileRef(source=item))
                continue
            raw = _mapping(item, item_path)
            self.leftovers(raw, ("source", "target", "uid", "gid", "mode"), self.relative(item_path))
            refs.append(
                FileRef(
                    source=_str(raw.get("source"), f"{item_path}.source"),
                    target=self.take(raw, "target", item_path, _str, None),
                    uid=self.take(raw, "uid", item_path, _scalar_str, None),
                    gid=self.take(raw, "gid", item_path, _scalar_str, None),
                    mode=self.take(raw, "mode", item_path, _file_mode, None),
                )
            )
        return tuple(refs)

    def networks(self, value: Any, path: str) -> FrozenDict[str, NetworkAttachment]:
        if isinstance(value, list | tuple):
            return FrozenDict((name, NetworkAttachment()) for name in _strings(value, path))
        attachments = {}
        for network, raw in _mapping(value, path).items():
            net_path = f"{path}.{network}"
            raw = self.binder._object(raw, net_path)
            known = (
                "aliases",
                "ipv4_address",
                "ipv6_address",
                "mac_address",
                "priority",
                "gw_priority",
                "interface_name",
                "link_local_ips",
                "driver_opts",
            )
            self.leftovers(raw, known, self.relative(net_path))
            attachments[network] = NetworkAttachment(
                aliases=self.take(raw, "aliases", net_path, _strings, ()),
                ipv4_address=self.take(raw, "ipv4_address", net_path, _str, None),
                ipv6_address=self.take(raw, "ipv6_address", net_path, _str, None),
                mac_address=self.take(raw, "mac_address", net_path, _str, None),
                priority=self.take(raw, "priority", net_path, _int, 0),
                gw_priority=self.take(raw, "gw_priority", net_path, _int, 0),
                interface_name=self.take(raw, "interface_name", net_path, _str, None),
                link_local_ips=self.take(raw, "link_local_ips", net_path, _strings, ()),
                driver_opts=self.take(raw, "driver_opts", net_path, _str_map, FrozenDict()),
            )
        return FrozenDict(attachments)

    def ports(self, value: Any, path: str) -> tuple[PortSpec, ...]:
        ports = []
        for i, item in enumerate(_list(value, path)):
            item_path = f"{path}[{i}]"
            if isinstance(item, int) and not isinstance(item, bool):
                item = {"target": item}
            if isinstance(item, str):
                raise _Bad(item_path, f"expected the long port syntax (a mapping), got the string {item!r}")
            raw = _mapping(item, item_path)
            self.leftovers(
                raw,
                ("target", "published", "host_ip", "protocol", "mode", "name", "app_protocol"),
                self.relative(item_path),
            )
            target = _int(raw.get("target"), f"{item_path}.target")
            if not 0 < target < 65536:
                raise _Bad(f"{item_path}.target", f"port {target} out of range 1-65535")
            published = self.take(raw, "published", item_path, _scalar_str, None) or None
            if published is not None:
                _check_port_range(published, f"{item_path}.published")
            ports.append(
                PortSpec(
                    target=target,
                    published=published,
                    host_ip=self.take(raw, "host_ip", item_path, _str, None) or None,
                    protocol=self.take(raw, "protocol", item_path, _str, "tcp").lower(),
                    mode=self.take(raw, "mode", item_path, _str, "ingress"),
                    name=self.take(raw, "name", item_path, _str, None),
                    app_protocol=self.take(raw, "app_protocol", item_path, _str, None),
                )
            )
        return tuple(ports)

    def links(self, value: Any, path: str) -> tuple[Link, ...]:
        links = []
        for item in _strings(value, path):
            service, _, alias = item.partition(":")
            links.append(Link(service=service, alias=alias or service))
        return tuple(links)

    def depends_on(self, value: Any, path: str) -> FrozenDict[str, Dependency]:
        if isinstance(value, list | tuple):
            return FrozenDict((name, Dependency()) for name in _strings(value, path))
        result = {}
        for name, raw in _mapping(value, path).items():
            dep_path = f"{path}.{name}"
            raw = self.binder._object(raw, dep_path)
            self.leftovers(raw, ("condition", "required", "restart"), self.relative(dep_path))
            condition = self.take(raw, "condition", dep_path, _str, "service_started")
            if condition not in _CONDITIONS:
                raise _Bad(
                    f"{dep_path}.condition",
                    f'unknown condition "{condition}" (expected {", ".join(_CONDITIONS)})',
                )
            result[name] = Dependency(
                condition=condition,  # type: ignore[arg-type]  # checked against _CONDITIONS above
                required=self.take(raw, "required", dep_path, _bool, True),
                restart=self.take(raw, "restart", dep_path, _bool, False),
            )
        return FrozenDict(result)

    def healthcheck(self, value: Any, path: str) -> Healthcheck:
        raw = _mapping(value, path)
        self.leftovers(
            raw,
            ("test", "interval", "timeout", "start_period", "start_interval", "retries", "disable"),
            self.relative(path),
        )
        test_value = raw.get("test")
        if isinstance(test_value, str):
            test: tuple[str, ...] = ("CMD-SHELL", test_value)
        else:
            test = self.take(raw, "test", path, _strings, ())
        if test and test[0] not in ("CMD", "CMD-SHELL", "NONE"):
            raise _Bad(f"{path}.test", 'healthcheck.test must start either by "CMD", "CMD-SHELL" or "NONE"')
        return Healthcheck(
            test=test,
            interval=self.take(raw, "interval", path, _duration, None),
            timeout=self.take(raw, "timeout", path, _duration, None),
            start_period=self.take(raw, "start_period", path, _duration, None),
            start_interval=self.take(raw, "start_interval", path, _duration, None),
            retries=self.take(raw, "retries", path, _non_negative_int, None),
            disable=self.take(raw, "disable", path, _bool, False),
        )

    def deploy(self, value: Any, path: str) -> Deploy:
        raw = _mapping(value, path)
        self.leftovers(
            raw, ("mode", "replicas", "labels", "resources", "restart_policy"), self.relative(path)
        )
        resources = self.binder._object(raw.get("resources"), f"{path}.resources")
        self.leftovers(resources, ("limits", "reservations"), self.relative(f"{path}.resources"))
        restart_policy = None
        if raw.get("restart_policy") is not None:
            rp_path = f"{path}.restart_policy"
            rp = _mapping(raw["restart_policy"], rp_path)
            self.leftovers(rp, ("condition", "delay", "max_attempts", "window"), self.relative(rp_path))
            condition = self.take(rp, "condition", rp_path, _str, None)
            if condition is not None:
                try:
                    restart_name(condition)
                except ValueError as exc:
                    raise _Bad(f"{rp_path}.condition", str(exc)) from exc
            restart_policy = DeployRestartPolicy(
                condition=condition,
                delay=self.take(rp, "delay", rp_path, _duration, None),
                max_attempts=self.take(rp, "max_attempts", rp_path, _non_negative_int, None),
                window=self.take(rp, "window", rp_path, _duration, None),
            )
        return Deploy(
            mode=self.take(raw, "mode", path, _str, None),
            replicas=self.take(raw, "replicas", path, _non_negative_int, None),
            labels=self.take(raw, "labels", path, _str_map, FrozenDict()),
            limits=self.resource_spec(resources.get("limits"), f"{path}.resources.limits"),
            reservations=self.resource_spec(resources.get("reservations"), f"{path}.resources.reservations"),
            restart_policy=restart_policy,
        )

    def resource_spec(self, value: Any, path: str) -> ResourceSpec | None:
        if value is None:
            return None
        raw = self.binder._object(value, path)
        self.leftovers(raw, ("cpus", "memory", "pids", "devices"), self.relative(path))
        devices = []
        device_list: list[Any] = self.take(raw, "devices", path, _list, [])
        for i, item in enumerate(device_list):
            dev_path = f"{path}.devices[{i}]"
            dev = self.binder._object(item, dev_path)
            self.leftovers(
                dev, ("capabilities", "driver", "count", "device_ids", "options"), self.relative(dev_path)
            )
            count = dev.get("count")
            devices.append(
                DeviceRequest(
                    capabilities=self.take(dev, "capabilities", dev_path, _strings, ()),
                    driver=self.take(dev, "driver", dev_path, _str, None),
                    count=-1 if count == "all" else self.take(dev, "count", dev_path, _int, None),
                    device_ids=self.take(dev, "device_ids", dev_path, _strings, ()),
                    options=self.take(dev, "options", dev_path, _str_map, FrozenDict()),
                )
            )
        return ResourceSpec(
            cpus=self.take(raw, "cpus", path, _float, None),
            memory=self.take(raw, "memory", path, _bytes, None),
            pids=self.take(raw, "pids", path, _int, None),
            devices=tuple(devices),
        )

    def logging(self, value: Any, path: str) -> Logging:
        raw = _mapping(value, path)
        self.leftovers(raw, ("driver", "options"), self.relative(path))
        return Logging(
            driver=self.take(raw, "driver", path, _str, None),
            options=self.take(raw, "options", path, _str_map, FrozenDict()),
        )

    def ulimits(self, value: Any, path: str) -> FrozenDict[str, Ulimit]:
        result = {}
        for name, item in _mapping(value, path).items():
            item_path = f"{path}.{name}"
            if isinstance(item, Mapping):
                if "soft" not in item or "hard" not in item:
                    raise _Bad(item_path, "a ulimit mapping needs both soft and hard")
                soft, hard = _int(item["soft"], f"{item_path}.soft"), _int(item["hard"], f"{item_path}.hard")
            else:
                soft = hard = _int(item, item_path)
            if soft > hard:
                raise _Bad(item_path, f"soft limit {soft} is greater than hard limit {hard}")
            result[name] = Ulimit(soft=soft, hard=hard)
        return FrozenDict(result)

    def devices(self, value: Any, path: str) -> tuple[Device, ...]:
        devices = []
        for i, item in enumerate(_list(value, path)):
            item_path = f"{path}[{i}]"
            if isinstance(item, str):
                devices.append(_device_from_string(item, item_path))
                continue
            raw = _mapping(item, item_path)
            self.leftovers(raw, ("source", "target", "permissions"), self.relative(item_path))
            source = _str(raw.get("source"), f"{item_path}.source")
            devices.append(
                Device(
                    source=source,
                    target=self.take(raw, "target", item_path, _str, source),
                    permissions=self.take(raw, "permissions", item_path, _str, "rwm"),
                )
            )
        return tuple(devices)

    def blkio(self, value: Any, path: str) -> BlkioConfig:
        raw = _mapping(value, path)
        known = (
            "weight",
            "weight_device",
            "device_read_bps",
            "device_read_iops",
            "device_write_bps",
            "device_write_iops",
        )
        self.leftovers(raw, known, self.relative(path))

        def entries(key: str) -> list[tuple[str, Any, str]]:
            found = []
            items: list[Any] = self.take(raw, key, path, _list, [])
            for i, item in enumerate(items):
                item_path = f"{path}.{key}[{i}]"
                entry = _mapping(item, item_path)
                # Compose's JSON output capitalises these two keys (Go struct without json tags).
                device = entry.get("path", entry.get("Path"))
                amount = entry.get("rate", entry.get("Rate", entry.get("weight", entry.get("Weight"))))
                found.append((_str(device, f"{item_path}.path"), amount, item_path))
            return found

        def throttles(key: str, convert: Callable[[Any, str], int]) -> tuple[ThrottleDevice, ...]:
            return tuple(
                ThrottleDevice(device, convert(rate, f"{p}.rate")) for device, rate, p in entries(key)
            )

        return BlkioConfig(
            weight=self.take(raw, "weight", path, _int, None),
            weight_device=tuple(
                WeightDevice(device, _int(weight, f"{p}.weight"))
                for device, weight, p in entries("weight_device")
            ),
            device_read_bps=throttles("device_read_bps", _bytes),
            device_read_iops=throttles("device_read_iops", _int),
            device_write_bps=throttles("device_write_bps", _bytes),
            device_write_iops=throttles("device_write_iops", _int),
        )


# Compose keys bound by a plain conversion into the Service field of the same name.
_SIMPLE_SERVICE_KEYS: dict[str, Callable[[Any, str], Any]] = {
    "image": _str,
    "pull_policy": _pull_policy,
    "platform": _str,
    "command": _command,
    "entrypoint": _command,
    "environment": _env_map,
    "working_dir": _str,
    "user": _scalar_str,
    "group_add": _strings,
    "hostname": _str,
    "domainname": _str,
    "container_name": _str,
    "labels": _str_map,
    "annotations": _str_map,
    "profiles": _strings,
    "read_only": _bool,
    "shm_size": _bytes,
    "storage_opt": _str_map,
    "network_mode": _str,
    "expose": _strings,
    "external_links": _strings,
    "dns": _strings,
    "dns_search": _strings,
    "dns_opt": _strings,
    "extra_hosts": _extra_hosts,
    "mac_address": _str,
    "restart": _restart,
    "scale": _non_negative_int,
    "init": _bool,
    "stop_signal": _str,
    "stop_grace_period": _duration,
    "tty": _bool,
    "stdin_open": _bool,
    "attach": _bool,
    "pid": _str,
    "ipc": _str,
    "uts": _str,
    "userns_mode": _str,
    "cgroup": _str,
    "cgroup_parent": _str,
    "privileged": _bool,
    "cap_add": _strings,
    "cap_drop": _strings,
    "security_opt": _strings,
    "sysctls": _str_map,
    "device_cgroup_rules": _strings,
    "runtime": _str,
    "mem_limit": _bytes,
    "mem_reservation": _bytes,
    "memswap_limit": _bytes,
    "mem_swappiness": _int,
    "oom_kill_disable": _bool,
    "oom_score_adj": _int,
    "cpus": _float,
    "cpu_shares": _int,
    "cpu_quota": _int,
    "cpu_period": _int,
    "cpu_rt_runtime": _int,
    "cpu_rt_period": _int,
    "cpuset": _str,
    "pids_limit": _int,
}
# Compose keys bound by a _ServiceBinder method (key → method name) into the field of that name.
_STRUCTURED_SERVICE_KEYS: dict[str, str] = {
    "build": "build",
    "volumes": "mounts",
    "tmpfs": "tmpfs",
    "volumes_from": "volumes_from",
    "secrets": "file_refs",
    "configs": "file_refs",
    "networks": "networks",
    "ports": "ports",
    "links": "links",
    "depends_on": "depends_on",
    "healthcheck": "healthcheck",
    "deploy": "deploy",
    "logging": "logging",
    "ulimits": "ulimits",
    "devices": "devices",
    "blkio_config": "blkio",
}
# Every key with a Service field; the others are ``unsupported``.
_SERVICE_KEYS = frozenset(_SIMPLE_SERVICE_KEYS) | frozenset(_STRUCTURED_SERVICE_KEYS)


def _check_port_range(text: str, path: str) -> None:
    first, dash, last = text.partition("-")
    try:
        low, high = int(first), int(last) if dash else int(first)
    except ValueError:
        raise _Bad(path, f'invalid published port "{text}"') from None
    if not (0 <= low <= high <= 65535):
        raise _Bad(path, f'invalid published port "{text}": out of range 0-65535')


def _device_from_string(text: str, path: str) -> Device:
    parts = text.split(":")
    if len(parts) == 1:
        return Device(source=parts[0], target=parts[0])
    if len(parts) == 2:
        if parts[1] and set(parts[1]) <= set("rwm") and not parts[1].startswith("/"):
            return Device(source=parts[0], target=parts[0], permissions=parts[1])
        return Device(source=parts[0], target=parts[1])
    if len(parts) == 3:
        return Device(source=parts[0], target=parts[1], permissions=parts[2])
    raise _Bad(path, f"invalid device {text!r}: expected SOURCE[:TARGET[:PERMISSIONS]]")
