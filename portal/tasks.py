"""Background tasks: thin interfaces over the engine; they take ids and never wait in a worker."""

from django.tasks import task

from portal.operations import engine


@task()
def operation_run(operation_id: int) -> str:
    """Run (or resume) one durable operation from its saved step."""
    return engine.operation_run(operation_id=operation_id)
