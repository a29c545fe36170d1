"""Background tasks: thin interfaces over services; they take ids and never wait in a worker."""

from django.tasks import task

from portal import services


@task()
def operation_run(operation_id: int) -> str:
    """Run (or resume) one durable operation from its saved step."""
    return services.operation_run(operation_id=operation_id)
