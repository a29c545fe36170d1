"""Every kind of operation the engine runs: one module each, loaded by ``PortalConfig.ready()``.

To add a kind: write ``portal/operations/<kind>.py`` declaring ``KIND = OperationKind(...)``
and add its module here. Nothing else registers a kind.
"""

KIND_MODULES: tuple[str, ...] = (
    "portal.operations.onboard",
    "portal.operations.launch",
    "portal.operations.delete",
    "portal.operations.power",
    "portal.operations.reconcile",
    "portal.operations.discharge",
    "portal.operations.sync",
    "portal.operations.disable",
    "portal.operations.drift_adopt",
    "portal.operations.drift_delete_server",
    "portal.operations.drift_release_ip",
    "portal.operations.drift_mark_terminated",
    "portal.operations.drift_link_user",
    "portal.operations.drift_disable_user",
)
