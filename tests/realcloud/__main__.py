"""python -m tests.realcloud up|down|status [--mode keystone|full] [--dir DIR]"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tests.realcloud import cloud, installer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.realcloud",
        description="A real OpenStack from PyPI on loopback, for the portal's tests.",
    )
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--mode", choices=cloud.MODES, default="keystone")
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(
            os.environ.get("CODESQUARE_REALCLOUD_DIR", installer.ROOT / ".realcloud" / "cloud")
        ),
        help="where the cloud keeps its state, configuration, data and logs",
    )
    args = parser.parse_args(argv)

    if args.command == "up":
        running = cloud.up(args.dir, args.mode)
        print(running.clouds_yaml.read_text(), end="")
        print(f"# clouds.yaml: {running.clouds_yaml}  (OS_CLOUD={running.cloud_name})")
        for label, seconds in running.timings.items():
            print(f"# {label}: {seconds:.1f}s")
        return 0
    if args.command == "down":
        seconds = cloud.down(args.dir)
        print(f"down in {seconds:.1f}s")
        return 0
    healthy, lines = cloud.status(args.dir)
    print("\n".join(lines))
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
