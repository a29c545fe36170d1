"""The cloud a test talks to, chosen with one switch: CODESQUARE_TEST_CLOUD.

- devcloud (default): the local stand-in from devcloud/, started on a free port.
- keystone: a real Keystone from PyPI (identity calls only).
- realcloud: the full real OpenStack from PyPI (Keystone, Nova, Neutron, Glance, Placement).
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

TARGET = os.environ.get("CODESQUARE_TEST_CLOUD", "devcloud")
# "K/N": this session runs the K-th of N shares of the selected cloud tests (tests/realcloud/ci.sh
# runs the shares side by side against one real cloud, whose tests mostly wait on it).
SHARD = os.environ.get("CODESQUARE_TEST_SHARD", "")


@dataclass(frozen=True)
class CloudTarget:
    kind: str  # devcloud | keystone | realcloud
    clouds_yaml: Path
    cloud_name: str
    auth_url: str
    admin_password: str
    services: frozenset[str] = field(default_factory=lambda: frozenset({"identity"}))
    extra: dict = field(default_factory=dict)

    def has(self, service: str) -> bool:
        return service in self.services


def _start_devcloud_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudTarget]:
    from devcloud.testing import start_devcloud

    running = start_devcloud(tmp_path_factory.mktemp("devcloud"))
    try:
        yield CloudTarget(
            kind="devcloud",
            clouds_yaml=running.clouds_yaml,
            cloud_name="devcloud",
            auth_url=running.auth_url,
            admin_password=running.admin_password,
            services=frozenset({"identity", "compute", "network", "image"}),
            extra={"devcloud": running},
        )
    finally:
        running.stop()


@pytest.fixture(scope="session")
def devcloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A devcloud of this test session's own, whatever CODESQUARE_TEST_CLOUD says.

    For tests about devcloud itself and for fault injection, which only devcloud offers.
    """
    from devcloud.testing import start_devcloud

    running = start_devcloud(tmp_path_factory.mktemp("devcloud-own"))
    try:
        yield running
    finally:
        running.stop()


def _start_real_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudTarget]:
    """A real Keystone or a full real cloud, through tests/realcloud.

    With CODESQUARE_REALCLOUD_DIR naming a directory where `python -m tests.realcloud up`
    already runs a cloud, that one is used and left running (CI brings it up once for several
    sessions); otherwise this session brings one up and takes it down at the end.
    """
    from tests.realcloud import cloud

    mode = "keystone" if TARGET == "keystone" else "full"
    shared = os.environ.get("CODESQUARE_REALCLOUD_DIR")
    owned = True
    if shared and (Path(shared) / "state.json").is_file():
        healthy, lines = cloud.status(Path(shared))
        if not healthy:
            raise pytest.UsageError(
                f"the real cloud in {shared} is not healthy:\n" + "\n".join(lines)
            )
        running = cloud.load(Path(shared))
        if not SERVICES_BY_TARGET[TARGET] <= running.services:
            raise pytest.UsageError(
                f"CODESQUARE_TEST_CLOUD={TARGET} needs a {mode} cloud; "
                f"{shared} runs a {running.mode} one"
            )
        owned = False
    else:
        where = Path(shared) if shared else tmp_path_factory.mktemp("realcloud")
        running = cloud.up(where, mode)
    try:
        yield CloudTarget(
            kind=TARGET,
            clouds_yaml=running.clouds_yaml,
            cloud_name=running.cloud_name,
            auth_url=running.auth_url,
            admin_password=running.admin_password,
            services=SERVICES_BY_TARGET[TARGET],
            extra={"realcloud": running},
        )
    finally:
        if owned:
            cloud.down(running.dir)


@pytest.fixture(scope="session")
def cloud_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudTarget]:
    """The cloud named by CODESQUARE_TEST_CLOUD, started once per test session."""
    if TARGET == "devcloud":
        yield from _start_devcloud_target(tmp_path_factory)
    elif TARGET in ("keystone", "realcloud"):
        yield from _start_real_target(tmp_path_factory)
    else:
        raise pytest.UsageError(
            f"CODESQUARE_TEST_CLOUD={TARGET!r} is not a known target "
            "(devcloud, keystone, realcloud)"
        )


# Selection: a test says which services it needs with @pytest.mark.needs("compute", ...).
# Against a real target only tests that talk to `cloud_target` are collected, and of those only
# the ones whose services the target has; a test using `cloud_target` without the marker is
# taken to need every service, and one that also takes the `devcloud` fixture is devcloud-only.
# So a compute test never "passes" against a Keystone-only cloud: it is deselected, and the
# collection report says so.
_ALL_SERVICES = frozenset({"identity", "compute", "network", "image"})
SERVICES_BY_TARGET: dict[str, frozenset[str]] = {
    "devcloud": _ALL_SERVICES,
    "keystone": frozenset({"identity"}),
    "realcloud": _ALL_SERVICES,
}
_DESELECTED = pytest.StashKey[dict[str, int]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "needs(*services): the cloud services the test uses (identity, compute, network, "
        "image); tests whose services the CODESQUARE_TEST_CLOUD target lacks are deselected",
    )


def needed_services(item: pytest.Item) -> frozenset[str]:
    marker = item.get_closest_marker("needs")
    if marker is None:
        return _ALL_SERVICES
    unknown = set(marker.args) - _ALL_SERVICES
    if unknown:
        raise pytest.UsageError(f"{item.nodeid}: unknown service(s) in needs(): {unknown}")
    return frozenset(marker.args)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if TARGET == "devcloud" or TARGET not in SERVICES_BY_TARGET:
        return
    offered = SERVICES_BY_TARGET[TARGET]
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    counts = {
        "not a cloud test": 0,
        "devcloud only": 0,
        "needs a service the target lacks": 0,
    }
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "cloud_target" not in fixtures:
            counts["not a cloud test"] += 1
            dropped.append(item)
        elif "devcloud" in fixtures:
            # It also reaches cloud_target through shared fixtures, but what it checks
            # (fault injection, the server-side request log) exists in devcloud only.
            counts["devcloud only"] += 1
            dropped.append(item)
        elif not needed_services(item) <= offered:
            counts["needs a service the target lacks"] += 1
            dropped.append(item)
        else:
            kept.append(item)
    if SHARD:
        kept, elsewhere = shard_items(kept, SHARD)
        counts["in another shard"] = len(elsewhere)
        dropped += elsewhere
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    config.stash[_DESELECTED] = counts


def shard_items(items: list[Any], shard: str) -> tuple[list[Any], list[Any]]:
    """``shard`` "K/N" (1 ≤ K ≤ N): the items of the K-th share, and the rest.

    Tests are dealt in turn, not whole files: a file's tests cost alike (the slow ones launch
    VMs) while files differ tenfold, so dealing files left one share twice as long as the other.
    """
    try:
        k, n = (int(part) for part in shard.split("/"))
    except ValueError:
        raise pytest.UsageError(f"CODESQUARE_TEST_SHARD={shard!r}: expected K/N") from None
    if not 1 <= k <= n:
        raise pytest.UsageError(f"CODESQUARE_TEST_SHARD={shard!r}: expected 1 <= K <= N")
    mine = [item for i, item in enumerate(items) if i % n == k - 1]
    rest = [item for i, item in enumerate(items) if i % n != k - 1]
    return mine, rest


def pytest_report_collectionfinish(config: pytest.Config) -> list[str]:
    counts = config.stash.get(_DESELECTED, None)
    if counts is None:
        return []
    offered = ", ".join(sorted(SERVICES_BY_TARGET[TARGET]))
    parts = ", ".join(f"{n} {why}" for why, n in counts.items() if n)
    share = f", share {SHARD}" if SHARD else ""
    return [f"cloud target {TARGET} ({offered}{share}): deselected {parts or 'nothing'}"]
