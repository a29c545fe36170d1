"""Durable operations: the engine that runs them and one declared module per kind.

``engine`` claims, leases, fences, runs, retries and finishes operations; ``registry`` holds the
declared kinds (``OperationKind``: steps in order, each step's words for people, where a retry
starts, what success means); ``kinds.KIND_MODULES`` lists the modules that declare them, loaded
by ``PortalConfig.ready()``. Starting an operation (validating the click, recording the row)
belongs to the use-cases in ``portal.services``.
"""
