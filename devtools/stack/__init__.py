"""The production topology on one machine without containers: `make stack`, its integration test, the bench.

The services docker-compose.yaml defines, as local processes on loopback: PostgreSQL (metadata database
and Celery result backend), Redis (Celery broker), the moto S3 server standing in for MinIO, nginx serving
the bucket as CloudFront would, and Airflow's api-server, scheduler, dag-processor, triggerer and Celery
workers. What both share comes from deploy/: ``airflow.env`` (every host-independent setting),
``pools.json``, ``nginx/default.conf.template``, ``airflow_local_settings.py`` (the pool policy) and the
bucket policy generated from the storage layout. Only host names, ports and paths differ, and
tests/test_stack_config.py checks the two agree.

Each service runs in its own process group, and ``<directory>/stack.json`` records its PID and start
time; ``down`` stops exactly those processes (a recycled PID is recognised by its start time and left
alone), nothing found by name.

- :mod:`devtools.stack.config`: what one stack is (ports, paths, settings) and what it reads from deploy/;
- :mod:`devtools.stack.services`: :class:`Stack`, which starts the services and talks to the REST API;
- :mod:`devtools.stack.processes`: the record of started processes, and stopping them.
"""

from __future__ import annotations

from devtools.stack.config import (
    ADMIN,
    AIRFLOW_ENV,
    DEPLOY,
    LOCAL_SETTINGS,
    NGINX_PARAMETERS,
    NGINX_TEMPLATE,
    POOLS,
    Ports,
    StackSettings,
    read_env_file,
    render_nginx,
    worker_name,
)
from devtools.stack.processes import Service, down, recorded, start_time, stop_services
from devtools.stack.services import Stack, StackError

__all__ = [
    "ADMIN",
    "AIRFLOW_ENV",
    "DEPLOY",
    "LOCAL_SETTINGS",
    "NGINX_PARAMETERS",
    "NGINX_TEMPLATE",
    "POOLS",
    "Ports",
    "Service",
    "Stack",
    "StackError",
    "StackSettings",
    "down",
    "read_env_file",
    "recorded",
    "render_nginx",
    "start_time",
    "stop_services",
    "worker_name",
]
