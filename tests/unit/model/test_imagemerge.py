"""model.imagemerge: a service's settings over its image's config, as Docker's daemon merges them.

The eight entrypoint/command combinations of test_argv were checked once against the real thing:
``docker-compose create`` (v2.40.3) on Docker 28.2 with an image whose ENTRYPOINT and CMD are both
set, then ``docker inspect`` of Config.Entrypoint/Cmd; and the environment case by running
``export -p`` in a container whose image sets ``A=img B=img`` under ``environment: [A=svc, B, C=]``
(B unset): it printed A='svc', C='' and PATH, no B (Docker adds HOME and HOSTNAME itself).
(Not automated tests: they need a Docker daemon, which CI does not promise.)"""

from __future__ import annotations

import pytest

from orchestrator.model import FrozenDict, Healthcheck, Service, imagemerge

IMAGE_ENTRYPOINT = ["/docker-entrypoint.sh"]
IMAGE_CMD = ["nginx", "-g", "daemon off;"]


@pytest.mark.parametrize(
    ("entrypoint", "command", "expected"),
    [
        (None, None, ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]),
        (None, ("echo", "hi"), ["/docker-entrypoint.sh", "echo", "hi"]),
        # command: [] alone does not clear the image's Cmd (len 0 → image Cmd), as in Docker.
        (None, (), ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]),
        # A non-empty entrypoint drops the image's Cmd.
        (("/bin/sh", "-c"), None, ["/bin/sh", "-c"]),
        (("/bin/sh", "-c"), ("echo hi",), ["/bin/sh", "-c", "echo hi"]),
        # entrypoint: [] clears the image's entrypoint but keeps its Cmd unless command is set.
        ((), None, ["nginx", "-g", "daemon off;"]),
        ((), ("echo", "hi"), ["echo", "hi"]),
        ((), (), ["nginx", "-g", "daemon off;"]),
    ],
)
def test_argv(
    entrypoint: tuple[str, ...] | None, command: tuple[str, ...] | None, expected: list[str]
) -> None:
    service = Service(name="web", entrypoint=entrypoint, command=command)
    assert imagemerge.argv(service, IMAGE_ENTRYPOINT, IMAGE_CMD) == expected


def test_argv_without_image_defaults() -> None:
    assert imagemerge.argv(Service(name="web"), None, None) == []
    assert imagemerge.argv(Service(name="web", command=("true",)), None, None) == ["true"]


def test_environment_service_wins_and_unset_declarations_hide_nothing() -> None:
    service = Service(name="web", environment=FrozenDict({"A": "svc", "B": None, "C": ""}))
    merged = imagemerge.environment(service, ["A=img", "B=img", "PATH=/usr/bin", "EMPTY="])
    # B was declared without a value: Docker drops it from the container config, and the image's
    # B is not added back because the key is present on the service side.
    assert merged == {"A": "svc", "C": "", "PATH": "/usr/bin", "EMPTY": ""}


def test_healthcheck_fields_fall_back_to_the_image() -> None:
    image = Healthcheck(test=("CMD", "check"), interval=30.0, timeout=5.0, retries=3)
    own = Healthcheck(interval=10.0)
    assert imagemerge.healthcheck(Service(name="a", healthcheck=own), image) == Healthcheck(
        test=("CMD", "check"), interval=10.0, timeout=5.0, retries=3
    )
    assert imagemerge.healthcheck(Service(name="a"), image) == image
    assert imagemerge.healthcheck(Service(name="a", healthcheck=Healthcheck(disable=True)), image) is None
    assert imagemerge.healthcheck(Service(name="a", healthcheck=Healthcheck(test=("NONE",))), image) is None
    assert imagemerge.healthcheck(Service(name="a"), Healthcheck(test=("NONE",))) is None
    assert imagemerge.healthcheck(Service(name="a", healthcheck=own), None) is None  # timings, no test
    assert imagemerge.healthcheck(Service(name="a"), None) is None


def test_scalar_defaults() -> None:
    bare = Service(name="a")
    assert imagemerge.working_dir(bare, None) == "/"
    assert imagemerge.working_dir(bare, "/srv") == "/srv"
    assert imagemerge.working_dir(Service(name="a", working_dir="/app"), "/srv") == "/app"
    assert imagemerge.user(bare, None) == ""
    assert imagemerge.user(bare, "nginx") == "nginx"
    assert imagemerge.user(Service(name="a", user="1000:1000"), "nginx") == "1000:1000"
    assert imagemerge.stop_signal(bare, None) == "SIGTERM"
    assert imagemerge.stop_signal(bare, "SIGQUIT") == "SIGQUIT"
    assert imagemerge.stop_signal(Service(name="a", stop_signal="SIGINT"), "SIGQUIT") == "SIGINT"
