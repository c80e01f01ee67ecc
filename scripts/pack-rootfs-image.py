#!/usr/bin/env python3
"""Pack a root filesystem directory as a docker-archive image that ``orc image load`` accepts.

Owned here: turning a directory (or a busybox rootfs this script builds from Debian's
busybox-static) into a one-layer image tar with a name (``RepoTags``), an entrypoint/cmd, env,
working dir, exposed ports and volumes. Called by ``scripts/quickstart.sh``, ``scripts/build-debian-image.sh``
and the end-to-end tests; no network, no Docker. Python standard library only so it runs with
the system python3 before orc is installed.

    pack-rootfs-image.py --busybox --name orc.local/busybox:latest --output busybox.tar
    pack-rootfs-image.py --rootfs /var/cache/orc/debian --name orc.local/redis:bookworm \
        --cmd redis-server --output redis.tar
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"
# Layer entries get this mtime so two packs of the same tree are the same image.
EPOCH = 0


def build_busybox_rootfs(dest: Path) -> None:
    """A one-binary rootfs: /bin/busybox, a symlink per applet, passwd/group, mount points."""
    if not BUSYBOX.exists():
        sys.exit("pack-rootfs-image: /bin/busybox missing (apt-get install busybox-static)")
    for d in (
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "etc",
        "proc",
        "sys",
        "dev",
        "tmp",
        "root",
        "run",
        "var/run",
        "var/www",
    ):
        (dest / d).mkdir(parents=True, exist_ok=True)
    (dest / "tmp").chmod(0o1777)
    shutil.copy2(BUSYBOX, dest / "bin" / "busybox")
    applets = subprocess.run(
        [str(BUSYBOX), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        link = dest / "bin" / applet
        if applet != "busybox" and not link.exists():
            link.symlink_to("busybox")
    (dest / "etc" / "passwd").write_text(PASSWD)
    (dest / "etc" / "group").write_text(GROUP)
    for name in ("hosts", "hostname", "resolv.conf"):
        (dest / "etc" / name).touch()


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime = EPOCH
    info.uname = info.gname = ""
    return info


def layer_tar(rootfs: Path) -> bytes:
    """The rootfs as an uncompressed tar, entries sorted, with fixed mtimes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(rootfs):
            dirnames.sort()
            base = Path(dirpath)
            for name in sorted(dirnames) + sorted(filenames):
                path = base / name
                arcname = str(path.relative_to(rootfs))
                info = tar.gettarinfo(str(path), arcname)
                if info is None:  # sockets and the like are not part of an image
                    continue
                _normalise(info)
                if info.isreg():
                    with open(path, "rb") as handle:
                        tar.addfile(info, handle)
                else:
                    tar.addfile(info)
    return buffer.getvalue()


def image_archive(
    layer: bytes,
    name: str,
    entrypoint: list[str] | None,
    cmd: list[str] | None,
    env: list[str],
    workdir: str,
    exposed: list[str],
    volumes: list[str] | None = None,
) -> bytes:
    """A docker-save tar: ``manifest.json``, the config blob and the layer."""
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config: dict[str, object] = {
        "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine),
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", *env],
            "Entrypoint": entrypoint,
            "Cmd": cmd,
            "WorkingDir": workdir,
            "ExposedPorts": {p if "/" in p else f"{p}/tcp": {} for p in exposed} or None,
            "Volumes": {v: {} for v in volumes or ()} or None,
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "scripts/pack-rootfs-image.py"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    layer_name = diff_id.split(":", 1)[1] + "/layer.tar"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [name], "Layers": [layer_name]}]).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for member, data in ((config_name, config_bytes), (layer_name, layer), ("manifest.json", manifest)):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            info.mtime = EPOCH
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--rootfs", type=Path, help="directory to pack")
    source.add_argument("--busybox", action="store_true", help="build a busybox rootfs from /bin/busybox")
    parser.add_argument("--name", required=True, help="image name, e.g. orc.local/busybox:latest")
    parser.add_argument("--output", "-o", type=Path, required=True, help="docker-archive tar to write")
    parser.add_argument("--entrypoint", nargs="+")
    parser.add_argument("--cmd", nargs="+")
    parser.add_argument("--env", action="append", default=[], metavar="K=V")
    parser.add_argument("--workdir", default="/")
    parser.add_argument("--expose", action="append", default=[], metavar="PORT[/PROTO]")
    parser.add_argument("--volume", action="append", default=[], metavar="PATH", help="a VOLUME of the image")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="orc-pack-") as scratch:
        rootfs = args.rootfs
        if args.busybox:
            rootfs = Path(scratch) / "rootfs"
            build_busybox_rootfs(rootfs)
        elif not rootfs.is_dir():
            sys.exit(f"pack-rootfs-image: {rootfs} is not a directory")
        cmd = args.cmd if args.cmd or args.entrypoint else (["sh"] if args.busybox else None)
        archive = image_archive(
            layer_tar(rootfs), args.name, args.entrypoint, cmd, args.env, args.workdir, args.expose, args.volume
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    partial = args.output.with_name(args.output.name + ".partial")
    partial.write_bytes(archive)
    partial.replace(args.output)
    print(f"packed {args.name} ({len(archive) // 1024} KiB) into {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
