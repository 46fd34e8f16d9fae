"""The code location's executor and the GPU step's placement, from ZIMAGE_EXECUTOR and friends.

- `executor_for(settings)`: Dagster's `in_process_executor` (default), `celery_executor` on
  RabbitMQ (`ZIMAGE_EXECUTOR=celery`) or `k8s_job_executor` (`ZIMAGE_EXECUTOR=k8s`).
- `gpu_step_tags(settings)`: the op tags of the GPU asset for that executor: its Celery queue
  (= its GPU pool) and step priority, or its `dagster-k8s/config` (GPU limit, node selector,
  tolerations, memory, the weights volume). Tags, not run config, so UI launches, sensors,
  schedules and backfills all place the step the same way.
- `celery_executor_config(settings)`: the one Celery configuration, shared by the executor (which
  sends steps) and by `zimage worker` (which runs them); the two must agree.

The run launcher stays Dagster's default one and the run queue stays the QueuedRunCoordinator
with its priorities and pools (dagster.yaml); only where a run's steps execute changes.
"""

from __future__ import annotations

import json
import os

import dagster as dg

from zimage_assets.domain import placement
from zimage_assets.settings import Settings

CELERY_QUEUE_TAG = "dagster-celery/queue"
CELERY_STEP_PRIORITY_TAG = "dagster-celery/priority"
CELERY_RUN_PRIORITY_TAG = "dagster-celery/run_priority"
K8S_CONFIG_TAG = "dagster-k8s/config"
CODE_LOCATION_MODULE = "zimage_assets.definitions"  # what every worker imports at start


def executor_for(settings: Settings) -> dg.ExecutorDefinition:
    if settings.executor == "celery":
        from dagster_celery import celery_executor

        return celery_executor.configured(celery_executor_config(settings), name="celery")
    if settings.executor == "k8s":
        from dagster_k8s import k8s_job_executor

        # Image, namespace, env and instance come from the K8sRunLauncher of the Helm chart;
        # the GPU step adds its own pod settings through its op tags.
        return k8s_job_executor
    # GPU work runs in the run's own process: one model load per run, not one per step.
    return dg.in_process_executor


def gpu_step_tags(settings: Settings) -> dict[str, str]:
    """Op tags of the GPU asset: where its step runs under the configured executor."""
    if settings.executor == "celery":
        return {CELERY_QUEUE_TAG: settings.gpu_pool, CELERY_STEP_PRIORITY_TAG: str(placement.GPU_STEP_PRIORITY)}
    if settings.executor == "k8s":
        return {K8S_CONFIG_TAG: json.dumps(gpu_step_k8s_config(settings), sort_keys=True)}
    return {}


def gpu_step_k8s_config(settings: Settings) -> dict:
    return placement.gpu_step_k8s_config(
        pool=settings.gpu_pool,
        gpus=settings.k8s_gpus,
        node_selector=placement.parse_node_selector(settings.k8s_node_selector),
        tolerations=placement.parse_tolerations(settings.k8s_tolerations),
        memory=settings.k8s_gpu_memory,
        weights_claim=settings.k8s_weights_claim,
        weights_mount=settings.k8s_weights_mount,
    )


def celery_executor_config(settings: Settings, *, resolve_secrets: bool = False) -> dict:
    """The `celery_executor` config block (also the `execution: config:` of a worker's YAML).

    The broker URL may hold a password: when it came from the environment the code location
    names the variable (`{"env": ...}`) so Dagster resolves it at run time and never shows it;
    `resolve_secrets=True` writes the value itself (the worker's private config file).
    """
    broker = settings.celery_broker_url
    if not resolve_secrets and os.environ.get("ZIMAGE_CELERY_BROKER_URL") == broker:
        broker = {"env": "ZIMAGE_CELERY_BROKER_URL"}
    return {
        "broker": broker,
        "backend": settings.celery_backend_url,
        "include": [CODE_LOCATION_MODULE],
        "config_source": {
            # Every step without a queue tag (prompts, checks, publication) goes to the CPU queue.
            "task_default_queue": settings.celery_cpu_queue,
            # A step is acknowledged when it has finished: a worker killed mid-batch gives the
            # batch back and another worker resumes it from the images already stored. RabbitMQ
            # then needs consumer_timeout above the longest batch (deploy/rabbitmq/rabbitmq.conf).
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            # A busy worker reserves no second batch (it would wait behind the first).
            "worker_prefetch_multiplier": 1,
            # A solo-pool worker cannot answer AMQP heartbeats while a batch runs: with them on,
            # RabbitMQ drops its connection after two missed beats and hands the batch to another
            # worker while the first still runs it (measured). A killed worker's socket closes at
            # once all the same; a lost host is noticed by TCP keepalive.
            "broker_heartbeat": 0,
            "broker_connection_retry_on_startup": True,
        },
    }
