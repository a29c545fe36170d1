"""The cloud: configuration, state, and dispatch of one request to the service that owns it."""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from pathlib import Path

from devcloud.compute import Compute
from devcloud.control import Control
from devcloud.core import ApiError, Request, Response, keystone_error, service_error
from devcloud.faults import Faults, RequestLog
from devcloud.identity import Identity
from devcloud.image import Image
from devcloud.network import Network
from devcloud.placement import Placement
from devcloud.seed import seed_cloud
from devcloud.store import Store

log = logging.getLogger("devcloud")

# URL prefix -> service type, as the catalog publishes them.
PREFIXES = (
    ("/identity", "identity"),
    ("/compute", "compute"),
    ("/networking", "network"),
    ("/image", "image"),
    ("/placement", "placement"),
    ("/_devcloud", "control"),
)


@dataclass
class Config:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    admin_password: str = "devcloud-admin"
    build_seconds: float = 2.0
    token_ttl: int = 3600
    max_limit: int = 1000
    # How long Nova's network info cache lags Neutron: a floating IP shows in a server's
    # addresses only this long after it is associated, and lingers this long after release.
    address_refresh_seconds: float = 1.0
    # Nova's [DEFAULT] reclaim_instance_interval: above 0, a deleted server stays SOFT_DELETED
    # that long before it is reclaimed (deferred delete).
    reclaim_instance_interval: float = 0.0
    # The external network's subnet, the floating-IP pool (read when the cloud is first seeded).
    public_cidr: str = "172.24.4.0/24"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "devcloud.sqlite3"


def split_service(path: str) -> tuple[str | None, str]:
    """("compute", "/v2.1/servers") for "/compute/v2.1/servers"; (None, path) if unknown."""
    for prefix, service in PREFIXES:
        if path == prefix or path.startswith(prefix + "/"):
            return service, path[len(prefix) :].rstrip("/")
    return None, path


class Cloud:
    def __init__(self, config: Config) -> None:
        self.config = config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(config.db_path)
        self.faults = Faults()
        self.log = RequestLog()
        self.identity = Identity(self)
        self.compute = Compute(self)
        self.network = Network(self)
        self.image = Image(self)
        self.placement = Placement(self)
        self.control = Control(self)
        self.services = {
            "identity": self.identity,
            "compute": self.compute,
            "network": self.network,
            "image": self.image,
            "placement": self.placement,
            "control": self.control,
        }
        with self.store.lock:
            seed_cloud(self)
            self.store.commit()

    def base_url(self, host_header: str | None) -> str:
        if self.config.host in ("0.0.0.0", "::", "") and host_header:  # noqa: S104
            return f"http://{host_header}"
        host = self.config.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.config.port}"

    def dispatch(self, req: Request) -> Response:
        """Route, authenticate and run one request under the state lock; never raises."""
        service = self.services[req.service]
        try:
            with self.store.lock:
                try:
                    self.compute.tick()
                    route, params, allowed = service.router.match(req.method, req.path)
                    if route is None:
                        if allowed:
                            raise self._method_not_allowed(req, allowed)
                        raise service_error(
                            req.service, 404, "The resource could not be found.", req.accept
                        )
                    req.params = params
                    if not route.public:
                        req.token = self.identity.authenticate(req)
                    service.before(req)
                    response = route.handler(req)
                    service.after(req, response)
                finally:
                    self.store.commit()
        except ApiError as exc:
            response = exc.response
            service.after(req, response)
        except Exception:
            log.error("unhandled error on %s %s\n%s", req.method, req.path, traceback.format_exc())
            response = service_error(
                req.service, 500, "Unexpected API Error. devcloud logged the traceback.", req.accept
            ).response
        response.headers.setdefault("x-openstack-request-id", req.request_id)
        return response

    def _method_not_allowed(self, req: Request, allowed: list[str]) -> ApiError:
        if req.service == "identity":
            error = keystone_error(405, "The method is not allowed for the requested URL.")
        else:
            error = service_error(
                req.service,
                405,
                "The method specified is not allowed for this resource.",
                req.accept,
            )
        error.response.headers["Allow"] = ", ".join(sorted(set(allowed)))
        return error

    def close(self) -> None:
        self.store.close()
