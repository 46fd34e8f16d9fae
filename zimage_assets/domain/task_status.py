"""A task's status, as clients read it, from the facts in the project's tables.

    queued     recorded; waiting for the sensor to mint its batch, or for the batch's run to start
    running    its batch is being generated (prompts, images, gates, publication)
    succeeded  its batch is published: every image has its final verdict (PASS images have a URL;
               REVIEW images wait for a person and get one if approved; BLOCK images say why)
    failed     its batch's run failed, or it could not be minted (the reason says why)
    blocked    every image was BLOCKed, or the prompt was refused when the request arrived

Pure: the caller fetches the rows (resources/state_db/requests.py) and passes a function that
turns a published image into its URL (the image store's business).
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping, Sequence

from zimage_assets.domain.timestamps import iso_z
from zimage_assets.domain.verdicts import BLOCK, PASS

TASK_STATUSES = ("queued", "running", "succeeded", "failed", "blocked")
FINISHED = ("succeeded", "failed", "blocked")
# Row statuses of `request_tasks`: queued (no batch yet), minted (in a batch), or a finished one.
ROW_STATUSES = ("queued", "minted", *FINISHED)


def task_status(row_status: str, batch_status: str | None, verdicts: Sequence[str], items: int) -> str:
    if batch_status is None:
        return row_status if row_status in FINISHED else "queued"
    if batch_status == "minted":
        return "queued"
    if batch_status in ("running", "generated"):
        return "running"
    if batch_status == "failed":
        return "failed"
    if verdicts and len(verdicts) >= items and all(v == BLOCK for v in verdicts):
        return "blocked"
    return "succeeded"


def describe_task(
    task: Mapping[str, Any],
    *,
    batch: Mapping[str, Any] | None,
    items: Sequence[Mapping[str, Any]],
    receipts: Mapping[tuple[str, str], Mapping[str, Any]],
    finals: Mapping[tuple[str, str], Mapping[str, Any]],
    run_id: str | None,
    published_at,
    url_for: Callable[[str, str, str], str],
) -> dict[str, Any]:
    """The task document: status, progress, per image its URL, seed, size, verdict and reasons,
    its batch and run, timings. `items`: the task's batch items in order; `receipts`: the image
    each item shows (its last attempt, the compliance-fixed one where a fix applied)."""
    batch_status = batch["status"] if batch else None
    images = []
    for index, item in enumerate(items):
        key = (item["sku"], item["view"])
        receipt, final = receipts.get(key), finals.get(key)
        verdict = final["verdict"] if final else None
        published = batch_status == "published" and verdict == PASS and receipt is not None
        images.append(
            {
                "index": index,
                **({} if task["kind"] == "generate" else {"sku": item["sku"], "view": item["view"]}),
                "url": url_for(item["sku"], item["view"], receipt["sha256"]) if published else None,
                "sha256": receipt["sha256"] if receipt else None,
                "seed": receipt["seed"] if receipt else item.get("seed"),
                "width": receipt["width"] if receipt else item.get("width"),
                "height": receipt["height"] if receipt else item.get("height"),
                "verdict": verdict,
                "reasons": list(final["reasons"]) if final else [],
                "attempt": final["attempt"] if final else None,
            }
        )
    verdicts = [i["verdict"] for i in images if i["verdict"]]
    status = task_status(task["status"], batch_status, verdicts, len(items))
    request = json.loads(task["request"])
    reason = json.loads(task["reason"]) if task.get("reason") else None
    seconds = (published_at - task["requested_at"]).total_seconds() if published_at else None
    return {
        "task_id": task["task_id"],
        "status": status,
        "kind": task["kind"],
        "priority": task["priority"],
        "source": task["source"],
        **({"reason": reason} if reason else {}),
        "progress": {
            "images": len(items) or task["num_images"],
            "made": len(receipts),
            "judged": len(verdicts),
            "published": sum(1 for i in images if i["url"]),
            "stage": batch_status or ("refused" if task["status"] == "blocked" else task["status"]),
        },
        "images": images,
        "batch_id": task.get("batch_id"),
        "run_id": run_id,
        "timings": {
            "requested_at": iso_z(task["requested_at"]),
            "created_at": iso_z(task["created_at"]),
            "minted_at": iso_z(batch["created_at"]) if batch else None,
            "deadline": iso_z(batch["deadline"]) if batch else None,
            "published_at": iso_z(published_at),
            "seconds_to_published": round(seconds, 3) if seconds is not None else None,
        },
        "request": request,
    }
