"""The one module that touches Airflow: Variables, Connections and the S3Hook become plain objects.

Everything here runs inside tasks, never at DAG parse time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, TypeVar

from airflow.configuration import conf
from airflow.sdk import ExceptionRetryPolicy, RetryAction, RetryRule

from composer_mirror import alerts, context
from composer_mirror.batches import Batch
from composer_mirror.context import Context
from composer_mirror.errors import InvalidPackageName, InvalidVersion, SettingsError, TargetError
from composer_mirror.handoff import hand_off, receive
from composer_mirror.settings import NOTIFIER_VARIABLE, VARIABLES, Settings
from composer_mirror.store import S3Store
from composer_mirror.store.layout import handoff_dir
from composer_mirror.upstream.composer import Endpoints

logger = logging.getLogger(__name__)

UPSTREAM_CONN_ID = "composer_upstream"
# Every task is killed when it runs longer than its execution_timeout (a hung upstream or S3
# connection, a hostile input), then retried, never left holding a worker slot for hours. Sized from
# the Benchmark section of the README (10,000 packages, 2 cores, `dags test`, so one batch of all of
# them): the cold mirror, the slowest run measured, took 2,605 s beyond Airflow's fixed cost, nearly
# all of it in its one batch (sync_metadata, then fetch_archives, which downloads); revalidating the
# same 10,000 packages took 26 s and no other task of any run took over a minute. LONG_TASK (the
# batch tasks, publish, verify, prune) is 4x the cold batch (10,420 s, rounded up to 3 h): room for
# a slower machine or upstream, and a killed batch loses little, since a retry skips the archives
# the killed try stored. SHORT_TASK is 30x the slowest other task.
SHORT_TASK = timedelta(minutes=30)
LONG_TASK = timedelta(hours=3)
# A failed task is retried twice: 5 to 10 minutes after the first failure, 10 to 20 after the second
# (exponential backoff; Airflow adds a deterministic jitter of up to the delay again), capped at
# 30 minutes, so a transient outage (S3 throttling, an upstream restart) costs minutes, not a run.
# The first delay is Airflow's own setting, [core] default_task_retry_delay (300 s unless set), so an
# operator (or a test that kills a worker) changes it without editing code; it is read where the DAG
# files are parsed, as every DAG argument is.
# What a retry cannot fix fails at once: a setting or an input that is wrong (the retry policy), and
# a run's verdict (failures after publishing, problems found by verify, a stale repository), which
# its task raises as AirflowFailException.
RETRIES = 2
RETRY_DELAY = timedelta(seconds=conf.getint("core", "default_task_retry_delay", fallback=300))
MAX_RETRY_DELAY = timedelta(minutes=30)
NOT_RETRIED = (SettingsError, TargetError, InvalidPackageName, InvalidVersion)
DEFAULT_ARGS: dict[str, Any] = {
    "execution_timeout": SHORT_TASK,
    "retries": RETRIES,
    "retry_delay": RETRY_DELAY,
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": MAX_RETRY_DELAY,
    "retry_policy": ExceptionRetryPolicy(
        rules=[RetryRule(exception=list(NOT_RETRIED), action=RetryAction.FAIL, reason="a retry cannot fix it")]
    ),
}
T = TypeVar("T")
_RUN_CACHE: dict[tuple[str, ...], Any] = {}


def once_per_run(name: str, make: Callable[[], T]) -> T:
    """``make()`` once per DAG run in this process; every call outside a task makes a new one.

    Under `airflow dags test` every task of a run executes in one process, and reading 14 Variables
    (each a round trip to the execution API) and building a boto3 client (its service model parsed
    again) in each task is most of what the mirror adds to an empty run. Under an executor each task
    is its own process, so nothing is shared between tasks there. Only the current run is kept.
    """
    from airflow.sdk import get_current_context

    try:
        context = get_current_context()
    except RuntimeError:  # not inside a task: the SBOM upload endpoint, scripts
        return make()
    key = (context["dag"].dag_id, str(context["run_id"]), name)
    if key not in _RUN_CACHE:
        for stale in [cached for cached in _RUN_CACHE if cached[:2] != key[:2]]:
            del _RUN_CACHE[stale]
        _RUN_CACHE[key] = make()
    return _RUN_CACHE[key]


def load_settings() -> Settings:
    """Every composer_mirror_* Variable (AIRFLOW_VAR_* environment variables work too), read once per run."""
    return once_per_run("settings", _read_settings)


def _read_settings() -> Settings:
    from airflow.sdk import Variable

    values = {name: Variable.get(name, default=None) for name in VARIABLES.values()}
    return Settings.from_strings(values, upstream_auth=_upstream_auth())


def _upstream_auth() -> tuple[str, str] | str | None:
    """Credentials for the upstream from the optional ``composer_upstream`` connection.

    A password without a login is a bearer token; login and password are HTTP basic auth.
    """
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(UPSTREAM_CONN_ID)
    except AirflowNotFoundException:
        return None  # the connection is optional: a public upstream needs none
    if conn.login and conn.password:
        return (conn.login, conn.password)
    if conn.password:
        return conn.password
    raise SettingsError(f"connection {UPSTREAM_CONN_ID} needs a password (token) or a login and password")


def s3_client(aws_conn_id: str, threads: int) -> Any:
    """A boto3 S3 client (thread-safe) for this run, from the amazon provider's S3Hook."""
    return once_per_run(f"s3:{aws_conn_id}:{threads}", lambda: _new_s3_client(aws_conn_id, threads))


def _new_s3_client(aws_conn_id: str, threads: int) -> Any:
    """A boto3 S3 client from the amazon provider's S3Hook (credentials, endpoint_url, region).

    Tasks call S3 from ``threads`` threads at once; botocore's default pool of 10 connections would
    discard and reopen connections under that load, so the pool is raised to the thread count
    unless the connection's ``config_kwargs`` already allow more.
    """
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from botocore.config import Config

    hook = S3Hook(aws_conn_id=aws_conn_id)
    config = hook.config
    if (config.max_pool_connections or 10) < threads:
        hook.conn_config.botocore_config = config.merge(Config(max_pool_connections=threads))
    return hook.get_conn()


def build_context(upstream: dict[str, Any] | None = None, settings: Settings | None = None) -> Context:
    """The plain objects a step runs on; ``upstream`` is the read_upstream task's result (its endpoints)."""
    settings = settings or load_settings()
    endpoints = Endpoints.from_json(upstream) if upstream else None
    store = S3Store(s3_client(settings.aws_conn_id, settings.concurrency * 2), settings.bucket, settings.key_prefix)
    return Context(settings, store, context.upstream_client(settings, endpoints), endpoints)


def handed_off_batches(
    ref: dict[str, Any],
    upstream: dict[str, Any] | None,
    plan: Callable[[Context, Any], list[Batch]],
) -> list[dict[str, Any]]:
    """Receive a value, plan batches from it, and hand each batch to its mapped task instance.

    The batches' ``index`` and ``label`` stay visible: the UI labels each mapped instance with them.
    """
    directory = handoff_dir(*run_ids())

    def step(ctx: Context) -> list[dict[str, Any]]:
        inline = ctx.settings.handoff_inline_bytes
        return [
            hand_off(ctx.store, directory, f"batch-{b.index}", b.to_json(), inline, index=b.index, label=b.label)
            for b in plan(ctx, receive(ctx.store, ref))
        ]

    return context.run_with_context(lambda: build_context(upstream), step)


def batch_step(
    name: str, ref: dict[str, Any], upstream: dict[str, Any] | None, step: Callable[[Context, Any], Any]
) -> dict[str, Any]:
    """A mapped task's body: label the instance, receive its batch, hand the step's result on."""
    label_batch(ref["label"])
    return handed_off(
        f"{name}-{ref['index']}",
        upstream,
        lambda ctx: step(ctx, receive(ctx.store, ref)),
        index=ref["index"],
        label=ref["label"],
    )


def runs_in_process() -> bool:
    """True under `airflow dags test` / `dag.test()`: tasks run one after another in this process."""
    try:
        from airflow.sdk.execution_time import task_runner
        from airflow.sdk.execution_time.supervisor import InProcessSupervisorComms
    except ImportError:
        return False
    return isinstance(getattr(task_runner, "SUPERVISOR_COMMS", None), InProcessSupervisorComms)


def batch_slots(max_batches: int) -> int:
    """How many batches are worth planning: what can run side by side, capped by the setting.

    In-process runs execute one task at a time, so all parallelism is inside one batch there;
    otherwise Airflow's parallelism bounds how many mapped instances run at once.
    """
    if runs_in_process():
        return 1
    from airflow.configuration import conf

    return max(1, min(max_batches, conf.getint("core", "parallelism", fallback=32)))


def run_ids() -> tuple[str, str]:
    """The current task's DAG id and run id."""
    from airflow.sdk import get_current_context

    context = get_current_context()
    return context["dag"].dag_id, str(context["run_id"])


def current_run_id() -> str:
    return run_ids()[1]


def handed_off(
    name: str, upstream: dict[str, Any] | None, step: Callable[[Context], Any], **visible: Any
) -> dict[str, Any]:
    """Run a pipeline step and return its result for the next task: inline, or through the bucket.

    A typed record (:mod:`composer_mirror.sync.records`) goes as its JSON. See
    :mod:`composer_mirror.handoff`: large values in XCom cost the task process tens of MB.
    """
    directory = handoff_dir(*run_ids())

    def run(ctx: Context) -> dict[str, Any]:
        result = step(ctx)
        value = result.to_json() if hasattr(result, "to_json") else result
        return hand_off(ctx.store, directory, name, value, ctx.settings.handoff_inline_bytes, **visible)

    return context.run_with_context(lambda: build_context(upstream), run)


def label_batch(label: str) -> None:
    """Expose the batch's range to ``map_index_template`` so the UI shows it per mapped task."""
    from airflow.sdk import get_current_context

    get_current_context()["batch_label"] = label  # type: ignore[typeddict-unknown-key]


def run_type() -> str:
    """The current run's type as Airflow names it: ``scheduled``, ``manual``, ``backfill``, ``asset_triggered``."""
    from airflow.sdk import get_current_context

    kind = get_current_context()["dag_run"].run_type
    return str(kind.value)  # the enum's str() is "DagRunType.SCHEDULED", its value "scheduled"


def send_alert(airflow_context: Mapping[str, Any], message: str) -> bool:
    """Send ``message`` through the notifier the Variable composer_mirror_notifier names; True when sent.

    The setting is read now, at alert time (never at parse time), so changing it needs no DAG edit.
    Without it, nothing is sent. Nothing here raises: a broken setting or a failing notifier is
    logged as an error naming the Variable, and whatever failure the alert was about stays failed.
    The message is logged either way, and given to the notifier as ``mirror_alert`` in the context
    for its templated fields (``{"text": "{{ mirror_alert }}"}``).
    """
    logger.warning("alert: %s", message)
    try:
        from airflow.sdk import Variable

        spec = alerts.NotifierSpec.parse(Variable.get(NOTIFIER_VARIABLE, default=None))
        if spec is None:
            logger.info("no notifier configured (Airflow Variable %s): alert only logged", NOTIFIER_VARIABLE)
            return False
        spec.build()(_notifier_context(airflow_context, message))
    except Exception:
        logger.exception("could not send the alert through the notifier in the Airflow Variable %s", NOTIFIER_VARIABLE)
        return False
    return True


def _notifier_context(airflow_context: Mapping[str, Any], message: str) -> dict[str, Any]:
    """The context for the notifier: Airflow's, plus the message under ``mirror_alert``.

    `airflow dags test` hands DAG callbacks its serialized DAG, on which a notifier's template
    rendering fails (no ``get_template_env``); without a "dag" it renders with Airflow's default
    environment instead. The dag processor, which runs the callbacks of real runs, and every task
    hand over the DAG itself, which is kept.
    """
    notifier_context = {**airflow_context, alerts.MESSAGE_KEY: message}
    if not hasattr(notifier_context.get("dag"), "get_template_env"):
        notifier_context.pop("dag", None)
    return notifier_context


def alert_on_failure(airflow_context: Mapping[str, Any]) -> None:
    """Every DAG's on_failure_callback: a failed run is reported through the configured notifier."""
    ti = airflow_context.get("ti") or airflow_context.get("task_instance")
    message = alerts.run_failed_message(
        airflow_context["dag"].dag_id,
        str(airflow_context.get("run_id")),
        getattr(ti, "task_id", None),
        airflow_context.get("reason"),
    )
    send_alert(airflow_context, message)
