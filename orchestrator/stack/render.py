"""PURE. The canonical document: a loaded Compose model shaped exactly as Docker Compose prints it.

Owns the table of Compose's record types (field order, which fields are omitted when empty,
how each value is decoded — durations, byte sizes, shell commands, mode bits, ulimits, host lists)
and the two encoders that print it: JSON byte-compatible with ``docker compose config --format
json`` (Go's ``encoding/json``: struct field order, sorted maps, HTML-safe escaping) and YAML in the
same layout as ``--format yaml``. Called by :mod:`orchestrator.stack.loader` (to build
``Project.document``) and by the ``orc config`` verb (to print it).
"""

from __future__ import annotations

import json
import re
import shlex
import struct
from typing import Any

from orchestrator.errors import Problem, StackError
from orchestrator.stack.interpolate import to_boolean
from orchestrator.stack.merge import format_go_float
from orchestrator.stack.yamlsrc import YamlTimestamp

# A field: (key, type, omitempty). Types are names in STRUCTS, scalar names, or tuples
# ("list", T), ("map", T), ("ptr", T).
Field = tuple[str, Any, bool]


def _fields(spec: str) -> list[Field]:
    out: list[Field] = []
    for item in spec.split():
        key, typ = item.split(":", 1)
        always = key.endswith("!")
        key = key.rstrip("!")
        out.append((key, _parse_type(typ), not always))
    return out


def _parse_type(text: str) -> Any:
    if text.startswith("[]"):
        return ("list", _parse_type(text[2:]))
    if text.startswith("map."):
        return ("map", _parse_type(text[4:]))
    if text.startswith("*"):
        return ("ptr", _parse_type(text[1:]))
    return text


STRUCTS: dict[str, list[Field]] = {
    "Service": _fields(
        """profiles:[]str annotations:Mapping attach:*bool build:*Build develop:*Develop
        blkio_config:*Blkio cap_add:[]str cap_drop:[]str cgroup_parent:str cgroup:str cpu_count:int
        cpu_percent:float32 cpu_period:int cpu_quota:int cpu_rt_period:int cpu_rt_runtime:int cpus:float32
        cpuset:str cpu_shares:int command!:ShellCommand configs:[]FileRef container_name:str
        credential_spec:*CredentialSpec depends_on:map.Dependency deploy:*Deploy device_cgroup_rules:[]str
        devices:[]Device dns:StringList dns_opt:[]str dns_search:StringList dockerfile:str domainname:str
        entrypoint!:ShellCommand provider:*Provider environment:MappingWithEquals env_file:[]EnvFile
        expose:StringOrNumberList extends:*Extends external_links:[]str extra_hosts:HostsList
        group_add:[]str gpus:[]DeviceRequest hostname:str healthcheck:*Healthcheck image:str init:*bool
        ipc:str isolation:str labels:Labels label_file:[]str links:[]str logging:*Logging log_driver:str
        log_opt:map.str mem_limit:UnitBytes mem_reservation:UnitBytes memswap_limit:UnitBytes
        mem_swappiness:UnitBytes mac_address:str models:map.*ServiceModel net:str network_mode:str
        networks:map.*ServiceNetwork oom_kill_disable:bool oom_score_adj:int pid:str pids_limit:int
        platform:str ports:[]Port privileged:bool pull_policy:str read_only:bool restart:str runtime:str
        scale:*int secrets:[]FileRef security_opt:[]str shm_size:UnitBytes stdin_open:bool
        stop_grace_period:*Duration stop_signal:str storage_opt:map.str sysctls:Mapping tmpfs:StringList
        tty:bool ulimits:map.*Ulimit use_api_socket:bool user:str userns_mode:str uts:str volume_driver:str
        volumes:[]Volume volumes_from:[]str working_dir:str post_start:[]Hook pre_stop:[]Hook"""
    ),
    "Provider": _fields("type:str options:MultiOptions"),
    "Build": _fields(
        """context:str dockerfile:str dockerfile_inline:str entitlements:[]str args:MappingWithEquals
        provenance:str sbom:str ssh:SSHConfig labels:Labels cache_from:StringList cache_to:StringList
        no_cache:bool additional_contexts:Mapping pull:bool extra_hosts:HostsList isolation:str network:str
        target:str secrets:[]FileRef shm_size:UnitBytes tags:StringList ulimits:map.*Ulimit
        platforms:StringList privileged:bool"""
    ),
    "Blkio": _fields(
        """weight:int weight_device:[]WeightDevice device_read_bps:[]Throttle device_read_iops:[]Throttle
        device_write_bps:[]Throttle device_write_iops:[]Throttle"""
    ),
    "WeightDevice": _fields("Path!:str Weight!:int"),
    "Throttle": _fields("Path!:str Rate!:UnitBytes"),
    "Device": _fields("source:str target:str permissions:str"),
    "Logging": _fields("driver:str options:Options"),
    "Deploy": _fields(
        """mode:str replicas:*int labels:Labels update_config:*Update rollback_config:*Update
        resources:Resources restart_policy:*RestartPolicy placement:Placement endpoint_mode:str"""
    ),
    "Update": _fields(
        "parallelism:*int delay:Duration failure_action:str monitor:Duration max_failure_ratio:float32 order:str"
    ),
    "Resources": _fields("limits:*Resource reservations:*Resource"),
    "Resource": _fields(
        "cpus:NanoCPUs memory:UnitBytes pids:int devices:[]DeviceRequest generic_resources:[]GenericResource"
    ),
    "GenericResource": _fields("discrete_resource_spec:*DiscreteResource"),
    "DiscreteResource": _fields("kind!:str value!:int"),
    "RestartPolicy": _fields("condition:str delay:*Duration max_attempts:*int window:*Duration"),
    "Placement": _fields("constraints:[]str preferences:[]Preference max_replicas_per_node:int"),
    "Preference": _fields("spread:str"),
    "ServiceNetwork": _fields(
        """aliases:[]str driver_opts:Options gw_priority:int interface_name:str ipv4_address:str
        ipv6_address:str link_local_ips:[]str mac_address:str priority:int"""
    ),
    "Port": _fields("name:str mode:str host_ip:str target:int published:str protocol:str app_protocol:str"),
    "Volume": _fields(
        """type:str source:str target:str read_only:bool consistency:str bind:*Bind volume:*VolumeOpts
        tmpfs:*Tmpfs image:*VolumeImage"""
    ),
    "Bind": _fields("selinux:str propagation:str create_host_path:bool recursive:str"),
    "VolumeOpts": _fields("labels:Mapping nocopy:bool subpath:str"),
    "Tmpfs": _fields("size:UnitBytes mode:int"),
    "VolumeImage": _fields("subpath:str"),
    "FileRef": _fields("source:str target:str uid:str gid:str mode:*FileMode"),
    "Ulimit": _fields("single:int soft:int hard:int"),
    "Network": _fields(
        """name:str driver:str driver_opts:Options ipam:Ipam external:bool internal:bool attachable:bool
        labels:Labels enable_ipv4:*bool enable_ipv6:*bool"""
    ),
    "Ipam": _fields("driver:str config:[]*IpamPool"),
    "IpamPool": _fields("subnet:str gateway:str ip_range:str aux_addresses:Mapping"),
    "VolumeTop": _fields("name:str driver:str driver_opts:Options external:bool labels:Labels"),
    "CredentialSpec": _fields("config:str file:str registry:str"),
    "FileObject": _fields(
        """name:str file:str environment:str content:str external:bool labels:Labels driver:str
        driver_opts:map.str template_driver:str"""
    ),
    "Dependency": _fields("condition:str restart:bool required!:bool"),
    "Extends": _fields("file:str service:str"),
    "Healthcheck": _fields(
        """test:HealthCheckTest timeout:*Duration interval:*Duration retries:*int start_period:*Duration
        start_interval:*Duration disable:bool"""
    ),
    "Develop": _fields("watch:[]Trigger"),
    "Trigger": _fields(
        "path!:str action!:str target:str exec:Hook include:[]str ignore:[]str initial_sync:bool"
    ),
    "Hook": _fields(
        "command!:ShellCommand user:str privileged:bool working_dir:str environment:MappingWithEquals"
    ),
    "DeviceRequest": _fields(
        "capabilities:[]str driver:str count:DeviceCount device_ids:[]str options:Mapping"
    ),
    "ServiceModel": _fields("endpoint_var:str model_var:str"),
    "EnvFileObj": _fields("path:str required!:bool format:str"),
}

# yaml tags differ from json tags for a few fields
_YAML_ONLY_OMIT = {("Service", "command"), ("Service", "entrypoint"), ("Hook", "command")}
_STRUCT_KEYS = {name: {f[0].lower(): f for f in fields} for name, fields in STRUCTS.items()}


class _Decode(Exception):
    pass


def _err(path: str, message: str) -> StackError:
    return StackError(Problem(message, path=path or None))


# --- scalar decoding (mapstructure + compose-go decode hooks) --------------------------------------


def go_sprint(value: Any) -> str:
    """Go's ``fmt.Sprint`` for YAML scalars."""
    if isinstance(value, YamlTimestamp):
        return value.go_string()
    if value is None:
        return "<nil>"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        return format_go_float(value)
    if isinstance(value, list):
        return "[" + " ".join(go_sprint(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_sprint(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def _to_str(value: Any, path: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise _err(path, f"{path} must be a string")
    if isinstance(value, int):
        return str(value)
    raise _err(path, f"{path} must be a string")


def _to_int(value: Any, path: str) -> int:
    if isinstance(value, bool):
        raise _err(path, f"{path} must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value == int(value):
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]+", value):
        return int(value)
    raise _err(path, f"{path} must be an integer")


def _to_float(value: Any, path: str) -> float:
    if isinstance(value, bool):
        raise _err(path, f"{path} must be a number")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise _err(path, f"{path} must be a number")


def _to_bool(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return to_boolean(value)
        except ValueError as exc:
            raise _err(path, f"{path}: {exc}") from exc
    raise _err(path, f"{path} must be a boolean")


_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
    "w": 604_800_000_000_000,
}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)([a-zµμ]+)")


def parse_duration(text: str) -> int:
    """Nanoseconds of a Go duration string (plus ``d`` and ``w`` units, as str2duration allows)."""
    s = text
    sign = 1
    if s[:1] in "+-":
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError(f'time: invalid duration "{text}"')
    total = 0
    pos = 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if not m or m.group(1) in ("", "."):
            if re.fullmatch(r"[0-9.]+", s[pos:]):
                raise ValueError(f'time: missing unit in duration "{text}"')
            raise ValueError(f'time: invalid duration "{text}"')
        number, unit = m.group(1), m.group(2)
        if unit not in _DURATION_UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{text}"')
        whole, _, frac = number.partition(".")
        scale = _DURATION_UNITS[unit]
        total += int(whole or "0") * scale
        if frac:
            total += int(frac) * scale // (10 ** len(frac))
        pos = m.end()
    return sign * total


def _frac(value: int, precision: int) -> str:
    whole, rem = divmod(value, 10**precision)
    if rem == 0:
        return str(whole)
    digits = str(rem).rjust(precision, "0").rstrip("0")
    return f"{whole}.{digits}"


def format_duration(ns: int) -> str:
    """Go's ``time.Duration.String``."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < 1_000_000_000:
        if u < 1_000:
            return f"{sign}{u}ns"
        if u < 1_000_000:
            return f"{sign}{_frac(u, 3)}µs"
        return f"{sign}{_frac(u, 6)}ms"
    seconds = _frac(u % 60_000_000_000, 9) + "s"
    minutes = (u // 60_000_000_000) % 60
    hours = u // 3_600_000_000_000
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    if u >= 60_000_000_000:
        return f"{sign}{minutes}m{seconds}"
    return f"{sign}{seconds}"


_SIZE = re.compile(r"^(\d+(\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_SIZE_UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}


def parse_ram_bytes(text: str) -> int:
    """docker/go-units ``RAMInBytes``: ``512m`` → 536870912 (binary units)."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"invalid size: '{text}'")
    size = float(m.group(1))
    unit = _SIZE_UNITS.get((m.group(3) or "").lower(), 1)
    return int(size * unit)


def split_shell_words(text: str) -> list[str]:
    """A ``command:``/``entrypoint:`` string split like go-shellwords (POSIX quoting)."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=False)
    lexer.whitespace_split = True
    lexer.commenters = ""
    return list(lexer)


def _float32(value: float) -> float:
    return float(struct.unpack("f", struct.pack("f", value))[0])


class Float32(float):
    """A float that prints like Go's float32 (shortest digits that round-trip in 32 bits)."""

    def go_text(self) -> str:
        v = float(self)
        if v == int(v) and abs(v) < 1e21:
            return str(int(v))
        for precision in range(1, 18):
            text = f"{v:.{precision}g}"
            if _float32(float(text)) == v:
                break
        if "e" in text:
            return format_go_float(float(text))
        return text


class RawJSON(str):
    """A value that has already been encoded (e.g. UnitBytes as a quoted number)."""


# --- decoding into the record table ----------------------------------------------------------------


def decode(value: Any, typ: Any, path: str) -> Any:
    """Decode a canonical dict value into Go-shaped Python values (None = nil)."""
    if isinstance(typ, tuple):
        kind, inner = typ
        if kind == "ptr":
            if value is None:
                return None
            return decode(value, inner, path)
        if kind == "list":
            if value is None:
                return None
            if not isinstance(value, list):
                raise _err(path, f"{path} must be a list")
            return [decode(v, inner, f"{path}[{i}]") for i, v in enumerate(value)]
        if kind == "map":
            if value is None:
                return None
            if not isinstance(value, dict):
                raise _err(path, f"{path} must be a mapping")
            return {k: decode(v, inner, f"{path}.{k}") for k, v in value.items()}
    if typ in STRUCTS:
        return _decode_struct(value, typ, path)
    try:
        return _DECODERS[typ](value, path)
    except ValueError as exc:
        raise _err(path, f"{path}: {exc}") from exc


def _decode_struct(value: Any, name: str, path: str) -> dict[str, Any]:
    if name == "Ulimit":
        if isinstance(value, int) and not isinstance(value, bool):
            return {"single": value}
        if isinstance(value, dict):
            return {
                "soft": _to_int(value.get("soft", 0), path + ".soft"),
                "hard": _to_int(value.get("hard", 0), path + ".hard"),
            }
        raise _err(path, f"unexpected value type for ulimit {path}")
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise _err(path, f"{path} must be a mapping")
    keys = _STRUCT_KEYS[name]
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key.startswith("x-"):
            out.setdefault("#extensions", {})[key] = item
            continue
        field = keys.get(key.lower())
        if field is None:
            continue
        out[field[0]] = decode(item, field[1], f"{path}.{key}" if path else key)
    return out


def _dec_shell(value: Any, path: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return split_shell_words(value)
        except ValueError as exc:
            raise _err(path, f"{path}: invalid command line: {exc}") from exc
    if isinstance(value, list):
        return [_to_str(v, path) for v in value]
    raise _err(path, f"{path} must be a string or a list")


def _dec_mapping_with_equals(value: Any, path: str) -> dict[str, str | None]:
    if isinstance(value, dict):
        return {
            k: (None if v is None else v if isinstance(v, str) else go_sprint(v)) for k, v in value.items()
        }
    if isinstance(value, list):
        out: dict[str, str | None] = {}
        for s in value:
            text = go_sprint(s)
            k, sep, v = text.partition("=")
            if k and k[-1].isspace():
                raise _err(path, f"environment variable {k} is declared with a trailing space")
            out[k] = v if sep else None
        return out
    raise _err(path, f"{path} must be a mapping or a list")


def _dec_mapping(value: Any, path: str) -> dict[str, str]:
    if isinstance(value, dict):
        return {k: "" if v is None else go_sprint(v) for k, v in value.items()}
    if isinstance(value, list):
        out: dict[str, str] = {}
        for s in value:
            k, _, v = go_sprint(s).partition("=")
            out[k] = v
        return out
    raise _err(path, f"{path} must be a mapping or a list")


def _dec_options(value: Any, path: str) -> dict[str, str]:
    if isinstance(value, dict):
        return {k: "" if v is None else go_sprint(v) for k, v in value.items()}
    raise _err(path, f"{path} must be a mapping")


def _dec_multi_options(value: Any, path: str) -> dict[str, list[str]]:
    if isinstance(value, dict):
        return {
            k: [go_sprint(x) for x in v] if isinstance(v, list) else [go_sprint(v)] for k, v in value.items()
        }
    raise _err(path, f"{path} must be a mapping")


def _dec_string_list(value: Any, path: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [_to_str(v, path) if isinstance(v, str) else _raise_str(path) for v in value]
    raise _err(path, f"invalid type for string list at {path}")


def _raise_str(path: str) -> str:
    raise _err(path, f"invalid type for string list at {path}")


def _dec_string_or_number_list(value: Any, path: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [go_sprint(v) for v in value]
    raise _err(path, f"invalid type for string list at {path}")


def _dec_hosts(value: Any, path: str) -> list[str]:
    hosts: dict[str, list[str]] = {}
    if isinstance(value, dict):
        for host, ips in value.items():
            if ips is None:
                ips = ""
            hosts[host] = [ips] if isinstance(ips, str) else [go_sprint(i) for i in ips]
    elif isinstance(value, list):
        for entry in value:
            text = go_sprint(entry)
            for sep in ("=", ":"):
                host, found, ip = text.partition(sep)
                if found:
                    hosts.setdefault(host, []).extend(ip.split(","))
                    break
            else:
                raise _err(path, f"invalid additional host, missing IP: {text}")
    else:
        raise _err(path, f"unexpected value type for extra_hosts at {path}")
    out: list[str] = []
    for host, ips in hosts.items():
        if host == "" or ":" in host or "=" in host:
            raise _err(path, f"bad host name '{host}'")
        for ip in ips:
            if len(ip) > 2 and ip[0] == "[" and ip[-1] == "]":
                ip = ip[1:-1]
            out.append(f"{host}={ip}")
    return sorted(out)


def _dec_labels(value: Any, path: str) -> dict[str, str]:
    if isinstance(value, dict):
        return {k: "" if v is None else v if isinstance(v, str) else go_sprint(v) for k, v in value.items()}
    if isinstance(value, list):
        out: dict[str, str] = {}
        for s in value:
            k, _, v = go_sprint(s).partition("=")
            out[k] = v
        return out
    raise _err(path, f"unexpected value type for labels at {path}")


def _dec_healthcheck_test(value: Any, path: str) -> list[str]:
    if isinstance(value, str):
        return ["CMD-SHELL", value]
    if isinstance(value, list):
        return [_to_str(v, path) for v in value]
    raise _err(path, f"unexpected value type for healthcheck.test at {path}")


def _dec_duration(value: Any, path: str) -> int:
    return parse_duration(go_sprint(value))


def _dec_unit_bytes(value: Any, path: str) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return parse_ram_bytes(value)
    return 0


def _dec_file_mode(value: Any, path: str) -> int:
    if isinstance(value, str):
        return int(value, 8)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _err(path, f"unexpected value type for mode at {path}")


def _dec_device_count(value: Any, path: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value.lower() == "all":
            return -1
        if re.fullmatch(r"[+-]?[0-9]+", value):
            return int(value)
        raise _err(path, f"invalid value {value!r}, the only value allowed is 'all' or a number")
    raise _err(path, f"invalid type for device count at {path}")


def _dec_nano_cpus(value: Any, path: str) -> Float32:
    return Float32(_float32(_to_float(value, path)))


def _dec_env_file(value: Any, path: str) -> dict[str, Any]:
    if isinstance(value, str):
        return {"path": value, "required": True}
    return _decode_struct(value, "EnvFileObj", path)


def _dec_ssh(value: Any, path: str) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [(k, "" if v is None else go_sprint(v)) for k, v in value.items()]
    raise _err(path, f"invalid ssh config at {path}")


_DECODERS: dict[str, Any] = {
    "str": _to_str,
    "int": _to_int,
    "bool": _to_bool,
    "float32": lambda v, p: Float32(_float32(_to_float(v, p))),
    "float": _to_float,
    "any": lambda v, p: v,
    "ShellCommand": _dec_shell,
    "MappingWithEquals": _dec_mapping_with_equals,
    "Mapping": _dec_mapping,
    "Labels": _dec_labels,
    "Options": _dec_options,
    "MultiOptions": _dec_multi_options,
    "StringList": _dec_string_list,
    "StringOrNumberList": _dec_string_or_number_list,
    "HostsList": _dec_hosts,
    "HealthCheckTest": _dec_healthcheck_test,
    "Duration": _dec_duration,
    "UnitBytes": _dec_unit_bytes,
    "FileMode": _dec_file_mode,
    "DeviceCount": _dec_device_count,
    "NanoCPUs": _dec_nano_cpus,
    "EnvFile": _dec_env_file,
    "SSHConfig": _dec_ssh,
}


# --- encoding (json.Marshal / yaml.Marshal of the records) -----------------------------------------

_ZERO_SCALARS = ("", 0, False)


def _is_zero(value: Any, typ: Any) -> bool:
    if typ in STRUCTS and not isinstance(typ, tuple):
        return False
    if value is None:
        return True
    if isinstance(typ, tuple):
        return len(value) == 0 if typ[0] in ("list", "map") else False
    if typ in STRUCTS:
        return False
    if isinstance(value, (list, dict, tuple)):
        return len(value) == 0
    if isinstance(value, bool):
        return value is False
    return value in _ZERO_SCALARS


def encode(value: Any, typ: Any, yaml_mode: bool) -> Any:
    """Go-shaped value → JSON-able value in Go's output order (dicts keep insertion order)."""
    if value is None:
        return None
    if isinstance(typ, tuple):
        kind, inner = typ
        if kind == "ptr":
            return encode(value, inner, yaml_mode)
        if kind == "list":
            return [encode(v, inner, yaml_mode) for v in value]
        keys = yaml_sorted(value) if yaml_mode else sorted(value)
        return {k: encode(value[k], inner, yaml_mode) for k in keys}
    if typ in STRUCTS:
        return _encode_struct(value, typ, yaml_mode)
    if typ in ("Mapping", "Labels", "Options", "MappingWithEquals", "MultiOptions"):
        return {k: value[k] for k in (yaml_sorted(value) if yaml_mode else sorted(value))}
    if typ == "Duration":
        return format_duration(value)
    if typ == "UnitBytes":
        return str(value) if yaml_mode else RawJSON(json.dumps(str(value)))
    if typ == "FileMode":
        return f"0{value:o}"
    if typ == "EnvFile":
        if value.get("required"):
            return value.get("path", "")
        if yaml_mode:
            return {"path": value.get("path", ""), "required": False}
        return _encode_struct(value, "EnvFileObj", yaml_mode)
    if typ == "SSHConfig":
        return [f"{k}={v}" if v else k for k, v in value]
    return value


def _encode_struct(value: dict[str, Any], name: str, yaml_mode: bool) -> Any:
    if name == "Ulimit":
        if value.get("single"):
            return value["single"]
        if yaml_mode:
            return {"soft": value.get("soft", 0), "hard": value.get("hard", 0)}
    out: dict[str, Any] = {}
    for key, typ, omitempty in STRUCTS[name]:
        item = value.get(key)
        # Go structs without field tags print their field names; go-yaml lower-cases them
        out_key = key.lower() if yaml_mode else key
        if yaml_mode:
            if (name, key) in _YAML_ONLY_OMIT:
                if item is None:
                    continue
            elif omitempty and not isinstance(typ, tuple) and typ in STRUCTS:
                if item is None or _yaml_struct_is_zero(item, typ):
                    continue
            elif omitempty and _is_zero(item, typ):
                continue
        elif omitempty and _is_zero(item, typ):
            continue
        if item is None and typ in STRUCTS:
            item = {}
        if item is None:
            if isinstance(typ, tuple) and typ[0] == "map":
                out[out_key] = None if not yaml_mode else {}
                continue
            out[out_key] = _zero_of(typ)
            continue
        out[out_key] = encode(item, typ, yaml_mode)
    if yaml_mode and "#extensions" in value:
        for k in yaml_sorted(value["#extensions"]):
            out[k] = yaml_sort_maps(value["#extensions"][k])
    return out


def _yaml_struct_is_zero(value: dict[str, Any], name: str) -> bool:
    return all(_is_zero(value.get(k), t) for k, t, _ in STRUCTS[name]) and "#extensions" not in value


def _zero_of(typ: Any) -> Any:
    if typ == "str":
        return ""
    if typ in ("int", "float32", "float", "UnitBytes", "NanoCPUs", "DeviceCount"):
        return 0
    if typ == "bool":
        return False
    return None


# --- JSON text ---------------------------------------------------------------------------------------


def _go_json_string(text: str) -> str:
    out = json.dumps(text, ensure_ascii=False)
    return (
        out.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _go_json_float(value: float) -> str:
    if isinstance(value, Float32):
        return value.go_text()
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    a = abs(value)
    if a < 1e-6 or a >= 1e21:
        text = repr(value)
        mantissa, _, exp = text.partition("e")
        exp_sign = "-" if exp.startswith("-") else "+"
        digits = exp.lstrip("+-").lstrip("0") or "0"
        if len(digits) < 2:
            digits = digits.rjust(2, "0")
        return f"{mantissa}e{exp_sign}{digits}"
    return repr(value)


def to_json(value: Any, indent: str = "") -> str:
    """Go's ``json.MarshalIndent(v, "", "  ")`` for values built by :func:`encode`."""
    if value is None:
        return "null"
    if isinstance(value, RawJSON):
        return str(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _go_json_string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_json_float(value)
    inner = indent + "  "
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{inner}{_go_json_string(str(k))}: {to_json(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        return "[\n" + ",\n".join(f"{inner}{to_json(v, inner)}" for v in value) + "\n" + indent + "]"
    return _go_json_string(str(value))


def plain_json(value: Any) -> Any:
    """The encoded document as plain Python data (what ``json.loads`` of the printed text gives)."""
    if isinstance(value, RawJSON):
        return json.loads(value)
    if isinstance(value, Float32):
        return float(value.go_text())
    if isinstance(value, dict):
        return {k: plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_json(v) for v in value]
    return value


def to_json_compact(value: Any) -> str:
    """Go's ``json.Marshal`` (no whitespace) for values built by :func:`encode`."""
    if isinstance(value, dict):
        return (
            "{" + ",".join(f"{_go_json_string(str(k))}:{to_json_compact(v)}" for k, v in value.items()) + "}"
        )
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(to_json_compact(v) for v in value) + "]"
    return to_json(value)


def _go_yaml_less(a: str, b: str) -> bool:
    """go-yaml v3's map key order: letters by code point, digit runs by numeric value."""
    digits = False
    for i in range(min(len(a), len(b))):
        ca, cb = a[i], b[i]
        if ca == cb:
            digits = ca.isdigit()
            continue
        al, bl = ca.isalpha(), cb.isalpha()
        if al and bl:
            return ca < cb
        if al or bl:
            return al if digits else bl
        an = bn = 0
        if ca == "0" or cb == "0":
            j = i - 1
            while j >= 0 and a[j].isdigit():
                if a[j] != "0":
                    an = bn = 1
                    break
                j -= 1
        ai = i
        while ai < len(a) and a[ai].isdigit():
            an = an * 10 + int(a[ai])
            ai += 1
        bi = i
        while bi < len(b) and b[bi].isdigit():
            bn = bn * 10 + int(b[bi])
            bi += 1
        if an != bn:
            return an < bn
        if ai != bi:
            return ai < bi
        return ca < cb
    return len(a) < len(b)


def yaml_sorted(keys: Any) -> list[str]:
    """Keys in the order go-yaml v3 writes a map's entries."""
    import functools

    def compare(x: str, y: str) -> int:
        if _go_yaml_less(x, y):
            return -1
        if _go_yaml_less(y, x):
            return 1
        return 0

    return sorted(keys, key=functools.cmp_to_key(compare))


def yaml_sort_maps(value: Any) -> Any:
    """Re-sort every dict of an untyped value in go-yaml's map key order."""
    if isinstance(value, dict):
        return {k: yaml_sort_maps(value[k]) for k in yaml_sorted(value)}
    if isinstance(value, list):
        return [yaml_sort_maps(v) for v in value]
    return value
