"""The HTTP front: one ThreadingHTTPServer, one port, every service under its own prefix."""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from devcloud.app import Cloud, split_service
from devcloud.core import Request, Response, keystone_error, now, service_error
from devcloud.faults import Fault

log = logging.getLogger("devcloud")

# How long an injected "timeout" fault holds a request before closing it unanswered.
HANG_SECONDS = 300.0


class DevcloudServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], cloud: Cloud) -> None:
        self.cloud = cloud
        self.stopping = threading.Event()
        super().__init__(address, Handler)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one segment (the stdlib flushes wfile after each request);
    # two small writes would meet the client's delayed ACK and cost ~40 ms per call.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server: DevcloudServer
    server_version = "devcloud"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        cloud = self.server.cloud
        raw_path, _, raw_query = self.path.partition("?")
        body = self._read_body()
        service, sub_path = split_service(raw_path)
        if service is None:
            self._send(
                Response(
                    404,
                    {
                        "error": "devcloud serves /identity, /compute, /networking, "
                        "/image, /placement"
                    },
                ),
                "GET",
            )
            return
        req = Request(
            method=self.command,
            service=service,
            path=sub_path,
            raw_query=raw_query,
            headers=self.headers,
            body=body,
            base_url=cloud.base_url(self.headers.get("Host")),
        )
        if service == "control":
            self._send(cloud.dispatch(req), self.command)
            return
        started = now()
        decision = cloud.faults.decide(self.command, raw_path)
        if decision.latency:
            time.sleep(decision.latency)
        fault = decision.fault
        status: int | None
        if fault is not None and not fault.after:
            status = self._apply(fault, req, None)
        elif fault is not None and fault.defer:
            # The client is answered (or cut off) now; the service acts on the request later.
            timer = threading.Timer(fault.defer, cloud.dispatch, args=(req,))
            timer.daemon = True
            timer.start()
            status = self._apply(fault, req, None)
        else:
            response = cloud.dispatch(req)
            status = response.status
            if fault is not None:
                status = self._apply(fault, req, response)
            else:
                self._send(response, self.command)
        token = req.token
        cloud.log.add(
            {
                "time": started,
                "service": service,
                "method": self.command,
                "path": sub_path or "/",
                "full_path": raw_path,
                "query": raw_query,
                "status": status,
                "request_id": req.request_id,
                "project_id": getattr(token, "project_id", None),
                "user_id": getattr(token, "user_id", None),
                "fault_id": fault.id if fault else None,
            }
        )
        if fault is not None and fault.action == "timeout":
            # Logged first, so a test can see the call while the client is still waiting.
            self.server.stopping.wait(HANG_SECONDS)
            self.close_connection = True

    def _apply(self, fault: Fault, req: Request, response: Response | None) -> int | None:
        """Carry out an injected fault; the status the client saw, or None if it saw none."""
        if fault.action == "drop":
            self.close_connection = True
            return None
        if fault.action == "timeout":
            return None  # the hang itself happens after the request is logged
        if fault.status is None:  # latency-only rule that was applied after the fact
            assert response is not None
            self._send(response, self.command)
            return response.status
        message = fault.message or {
            401: "The request you have made requires authentication.",
            503: "The server is currently unavailable. Please try again at a later time.",
        }.get(fault.status, f"devcloud injected fault {fault.id}")
        if fault.status == 401:
            # Token failures come from keystonemiddleware, in Keystone's shape, on every service.
            error = keystone_error(401, message).response
            error.headers["WWW-Authenticate"] = f'Keystone uri="{req.base_url}/identity"'
        else:
            error = service_error(req.service, fault.status, message, req.accept).response
        error.headers["x-openstack-request-id"] = req.request_id
        self.server.cloud.services[req.service].after(req, error)
        self._send(error, self.command)
        return fault.status

    def _send(self, response: Response, method: str) -> None:
        payload = b""
        if isinstance(response.body, bytes):
            payload = response.body
        elif response.body is not None:
            payload = json.dumps(response.body).encode()
        self.send_response(response.status)
        if payload or response.status not in (204, 304):
            self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if method != "HEAD" and payload:
            self.wfile.write(payload)


def make_server(cloud: Cloud, host: str, port: int) -> DevcloudServer:
    server = DevcloudServer((host, port), cloud)
    cloud.config.port = server.server_address[1]
    return server
