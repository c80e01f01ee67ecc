"""The pull-policy decision and the lock file (pure functions), with the recording fake driver."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from orchestrator.errors import NotFoundError, PermanentError, StackError
from orchestrator.runtime.images.driver import FakeImages
from orchestrator.runtime.images.lock import (
    LockedImage,
    LockFile,
    check_lock,
    create_lock,
    locked_source,
    locked_sources,
    parse_lock,
    render_lock,
    resolve_image_digests,
)
from orchestrator.runtime.images.policy import (
    Action,
    PullPolicy,
    PullPolicyError,
    decide_pull,
    parse_pull_policy,
    policy_from_mode,
)

DAY = 86400.0
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


@pytest.mark.parametrize(
    ("text", "policy"),
    [
        (None, PullPolicy("missing")),
        ("if_not_present", PullPolicy("missing")),
        ("refresh", PullPolicy("missing")),
        ("ALWAYS", PullPolicy("always")),
        ("never", PullPolicy("never")),
        ("build", PullPolicy("build")),
        ("daily", PullPolicy("interval", DAY)),
        ("weekly", PullPolicy("interval", 7 * DAY)),
        ("every_12h", PullPolicy("interval", 12 * 3600.0)),
        ("every_1d12h30m", PullPolicy("interval", DAY + 12 * 3600 + 1800.0)),
        ("every_2w", PullPolicy("interval", 14 * DAY)),
        ("every_90s", PullPolicy("interval", 90.0)),
    ],
)
def test_parse(text: str | None, policy: PullPolicy) -> None:
    assert parse_pull_policy(text) == policy


def test_policy_from_the_models_form() -> None:
    assert policy_from_mode("refresh", DAY) == PullPolicy("interval", DAY)
    assert policy_from_mode("refresh", None) == PullPolicy("missing")
    assert policy_from_mode("always") == PullPolicy("always")


@pytest.mark.parametrize("text", ["sometimes", "every_", "every_12", "every_0s", "every_1y", "daily "])
def test_parse_invalid(text: str) -> None:
    if text == "daily ":
        assert parse_pull_policy(text) == PullPolicy("interval", DAY)  # surrounding blanks are trimmed
        return
    with pytest.raises(PullPolicyError):
        parse_pull_policy(text)


@pytest.mark.parametrize(
    ("policy", "present", "last", "now", "has_build", "action"),
    [
        ("always", True, 0.0, 1.0, False, Action.PULL),
        ("missing", True, None, 1.0, False, Action.USE_LOCAL),
        ("missing", False, None, 1.0, False, Action.PULL),
        ("missing", False, None, 1.0, True, Action.BUILD),
        ("build", True, None, 1.0, True, Action.BUILD),
        ("never", True, None, 1.0, False, Action.USE_LOCAL),
        ("daily", False, None, 1.0, False, Action.PULL),
        ("daily", True, None, 1.0, False, Action.PULL),
        ("daily", True, 1000.0, 1000.0 + DAY - 1, False, Action.USE_LOCAL),
        ("daily", True, 1000.0, 1000.0 + DAY, False, Action.PULL),
        ("every_1h", True, 0.0, 3599.0, False, Action.USE_LOCAL),
        ("every_1h", True, 0.0, 3600.0, False, Action.PULL),
    ],
)
def test_decide(
    policy: str, present: bool, last: float | None, now: float, has_build: bool, action: Action
) -> None:
    decision = decide_pull(policy, present=present, last_pulled=last, now=now, has_build=has_build)
    assert decision.action is action
    assert decision.reason


def test_never_without_local_image_is_an_error() -> None:
    with pytest.raises(NotFoundError, match="redis is not present locally and pull_policy is never"):
        decide_pull("never", present=False, last_pulled=None, now=0.0, image="redis")


def test_lock_round_trip_and_check() -> None:
    lock = LockFile(
        {
            "web": LockedImage("nginx:1", "docker.io/library/nginx:1", D1, {"linux/amd64": D2}),
            "db": LockedImage("redis", "docker.io/library/redis:latest", D2, {"linux/amd64": D2}),
        }
    )
    text = render_lock(lock)
    assert text.index('"db"') < text.index('"web"')  # stable order
    assert parse_lock(text) == lock
    assert check_lock({"web": "nginx:1", "db": "redis", "builder": None}, lock) == []

    problems = check_lock({"web": "nginx:2", "api": "python:3"}, lock, file="/p/compose.lock")
    assert [str(p) for p in problems] == [
        "/p/compose.lock services.api: service has image 'python:3' but is not in the lock file; run `orc lock`",
        "/p/compose.lock services.web.image: the compose file says image 'nginx:2' but the lock pins 'nginx:1'; run `orc lock`",
        "/p/compose.lock services.db: locked but no such service with an image in the compose file",
    ]
    assert locked_source(lock.services["web"]) == f"docker.io/library/nginx:1@{D1}"
    assert locked_source(lock.services["web"], "linux/amd64") == f"docker.io/library/nginx:1@{D2}"
    assert locked_source(lock.services["web"], "linux/s390x") == f"docker.io/library/nginx:1@{D1}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ('{"version": 2}', "unsupported lock file version"),
        ('{"version": 1, "services": {"a": {"image": "x"}}}', "services.a: missing reference, digest"),
    ],
)
def test_bad_lock_files(text: str, message: str) -> None:
    with pytest.raises(StackError, match=message):
        parse_lock(text, "compose.lock")


def test_create_lock_and_resolve_digests_with_the_fake_driver() -> None:
    fake = FakeImages(digests={"docker.io/library/nginx:1": D1, "docker.io/library/redis:latest": D2})
    images = {"web": "nginx:1", "web2": "nginx:1", "db": "redis", "built": None}
    lock = anyio.run(create_lock, fake, images)
    assert sorted(lock.services) == ["db", "web", "web2"]
    assert lock.services["web"] == LockedImage(
        "nginx:1", "docker.io/library/nginx:1", D1, {"linux/amd64": D1}
    )
    assert [c for c in fake.calls if c[0] == "resolve_digest"] == [
        ("resolve_digest", "redis"),
        ("resolve_digest", "nginx:1"),
    ]

    resolved = anyio.run(
        resolve_image_digests, fake, {"web": "nginx:1", "pinned": f"redis@{D2}", "built": None}
    )
    assert resolved == {"web": f"docker.io/library/nginx:1@{D1}", "pinned": f"redis@{D2}"}

    with pytest.raises(
        PermanentError, match=r"service x: cannot lock image unknown:1: manifest .* not found"
    ):
        anyio.run(create_lock, fake, {"x": "unknown:1"})


def test_fake_driver_follows_the_pull_policy() -> None:
    image = FakeImages.make_image("docker.io/library/redis:latest")
    fake = FakeImages(remote={"docker.io/library/redis:latest": image})
    assert anyio.run(lambda: fake.ensure("redis")) == image  # missing → pull
    assert anyio.run(lambda: fake.ensure("redis")) == image  # present → local
    fake.now = 2 * DAY
    anyio.run(lambda: fake.ensure("redis", policy="daily"))
    assert [c for c in fake.calls if c[0] == "pull"] == [("pull", "redis"), ("pull", "redis")]
    with pytest.raises(NotFoundError):
        anyio.run(lambda: fake.ensure("busybox", policy="never"))


def test_locked_sources_for_up_locked(tmp_path: Path) -> None:
    lock = LockFile({"web": LockedImage("nginx:1", "docker.io/library/nginx:1", D1, {"linux/arm64": D2})})
    path = tmp_path / "compose.lock"
    with pytest.raises(StackError, match="no lock file"):
        locked_sources(path, {"web": "nginx:1"})
    path.write_text(render_lock(lock))
    assert locked_sources(path, {"web": "nginx:1", "b": None}) == {"web": f"docker.io/library/nginx:1@{D1}"}
    assert locked_sources(path, {"web": "nginx:1"}, {"web": "linux/arm64"}) == {
        "web": f"docker.io/library/nginx:1@{D2}"
    }
    with pytest.raises(StackError, match=r"services\.web\.image: the compose file says image 'nginx:2'"):
        locked_sources(path, {"web": "nginx:2"})
