"""`python -m devcloud`: serve Keystone, Nova, Neutron and Glance stand-ins on one port."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from devcloud.app import Cloud, Config
from devcloud.server import make_server


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devcloud",
        description="A local stand-in for Keystone v3, Nova v2.1, Neutron v2.0 and Glance v2.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8780)
    parser.add_argument("--data-dir", type=Path, required=True, help="state, clouds.yaml")
    parser.add_argument("--admin-password", default="devcloud-admin")
    parser.add_argument(
        "--build-seconds", type=float, default=2.0, help="how long a server stays in BUILD"
    )
    parser.add_argument("--token-ttl", type=int, default=3600, help="token lifetime in seconds")
    parser.add_argument(
        "--max-limit",
        type=int,
        default=1000,
        help="Nova's [api] max_limit: largest page of servers",
    )
    parser.add_argument(
        "--address-refresh-seconds",
        type=float,
        default=1.0,
        help="how long a server's addresses lag a floating IP's association or release",
    )
    parser.add_argument(
        "--public-cidr",
        default="172.24.4.0/24",
        help="the floating-IP pool (subnet of the external network 'public'), at first seeding",
    )
    parser.add_argument("--reset", action="store_true", help="forget all state and seed afresh")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return parser.parse_args(argv)


def clouds_yaml(url: str, password: str) -> str:
    # Written by hand so the server needs nothing beyond the standard library.
    return (
        "# Written by devcloud. Cloud 'devcloud' is the bootstrap admin in project 'admin'.\n"
        "clouds:\n"
        "  devcloud:\n"
        "    auth:\n"
        f"      auth_url: {url}/identity/v3\n"
        "      username: admin\n"
        f"      password: {_yaml_quote(password)}\n"
        "      project_name: admin\n"
        "      user_domain_name: Default\n"
        "      project_domain_name: Default\n"
        "    region_name: RegionOne\n"
        "    interface: public\n"
        "    identity_api_version: 3\n"
    )


def _yaml_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def reset_data(data_dir: Path) -> None:
    for name in ("devcloud.sqlite3", "devcloud.sqlite3-wal", "devcloud.sqlite3-shm", "clouds.yaml"):
        (data_dir / name).unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="devcloud %(levelname)s %(message)s",
    )
    data_dir: Path = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    if args.reset:
        reset_data(data_dir)
    config = Config(
        data_dir=data_dir,
        host=args.host,
        port=args.port,
        admin_password=args.admin_password,
        build_seconds=args.build_seconds,
        token_ttl=args.token_ttl,
        max_limit=args.max_limit,
        address_refresh_seconds=args.address_refresh_seconds,
        public_cidr=args.public_cidr,
    )
    cloud = Cloud(config)
    server = make_server(cloud, args.host, args.port)
    # A wildcard bind is still reached through loopback by the local clouds.yaml.
    wildcard = args.host in ("0.0.0.0", "::")  # noqa: S104
    url = f"http://127.0.0.1:{config.port}" if wildcard else cloud.base_url(None)
    target = data_dir / "clouds.yaml"
    tmp = target.with_suffix(".yaml.tmp")
    tmp.write_text(clouds_yaml(url, args.admin_password))
    tmp.replace(target)

    def stop(signum: int, frame: FrameType | None) -> None:
        server.stopping.set()
        # shutdown() waits for serve_forever to return, so it must not run on the serving thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"devcloud: serving {url} (identity {url}/identity/v3)", flush=True)
    print(f"devcloud: clouds.yaml written to {target} (cloud 'devcloud')", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        cloud.close()
        print("devcloud: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
