"""The cloud path on a simulated pod: how late metrics reach the store, and how long a pod bills
after the trainer's last step.

A tiny-model run goes through the fake RunPod server (tests/runpod/fake_runpod.py: the real
client, the real agent in a local "pod" process, the real trainer) with the launcher's default
poll interval (``runpod.poll_interval_s``). Printed:

- metric delay: from a point's creation on the pod (its ``timestamp``) to its ingest into the
  store by polling, p50 and p99; target p99 < 3 s (ratio p99 / 3 s, below 1 is good);
- paid seconds after the last step: from the trainer's last point to the terminate call, and
  the artifact download time (the collecting phase) separately; target: under 60 s plus the
  download time (ratio shown).

Run: ``.venv/bin/python bench/cloud_path.py [--steps 40]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TUNEDECK_TORCH_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

DELAY_TARGET_S = 3.0
AFTER_LAST_STEP_TARGET_S = 60.0


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def one_run(steps: int, workdir: Path) -> dict[str, Any]:
    from app.core.ingest import IngestEvent, Ingestor
    from app.core.launcher import create_job_for
    from app.core.runpod.client import RunPodClient
    from app.core.runpod.endpoints import runpod_endpoints
    from app.core.runpod.launcher import RunPodLauncher
    from app.core.store import Store
    from tests.runpod.agent_fixtures import tiny_run_config
    from tests.runpod.fake_runpod import ACCOUNT_KEY, fake_runpod_server
    from trainer.config import parse_config

    delays: list[float] = []
    terminate_calls: list[float] = []

    class TimedClient(RunPodClient):
        async def terminate_pod(self, pod_id: str) -> None:
            terminate_calls.append(time.time())
            await super().terminate_pod(pod_id)

    def heard(event: IngestEvent) -> None:
        now = time.time()
        if event.kind == "metrics":
            delays.extend(now - _epoch(p["timestamp"]) for p in event.points if "timestamp" in p)

    data = tiny_run_config(steps, save_steps=max(steps, 1))
    data["runpod"] = {"gpu_type": "NVIDIA RTX A5000"}  # default poll interval
    cfg = parse_config(data)
    with fake_runpod_server(workdir / "fake") as fake:
        os.environ["TUNEDECK_RUNPOD_API_URL"] = fake.url
        os.environ["TUNEDECK_RUNPOD_PROXY_TEMPLATE"] = fake.proxy_template
        fake.extra_pod_env.update(
            {"TUNEDECK_AGENT_SKIP_INSTALL": "1", "TUNEDECK_AGENT_HOME": "agent-home"}
        )
        store = Store(workdir / "store.sqlite")
        ingestor = Ingestor(store)
        ingestor.subscribe(heard)
        endpoints = runpod_endpoints()
        async with TimedClient(ACCOUNT_KEY, base_url=endpoints.api_url) as client:
            launcher = RunPodLauncher(
                store, ingestor, client, endpoints=endpoints, base_dir=workdir
            )
            job = create_job_for(store, cfg, target="runpod")
            await launcher.start(job, cfg)
            await asyncio.wait_for(launcher.wait(job.id), 600)
            await launcher.close()
        points = store.metrics(job.id)
        cloud = store.get_cloud_run(job.id)
        status = store.require_job(job.id).status
        store.close()
    phases = json.loads(cloud.phases) if cloud is not None else {}
    last_step_at = max(_epoch(p["timestamp"]) for p in points if "timestamp" in p)
    return {
        "status": status,
        "delays": delays,
        "after_last_step_s": (terminate_calls[0] - last_step_at) if terminate_calls else None,
        "collecting_s": phases.get("collecting", {}).get("seconds"),
        "phases": phases,
        "poll_interval_s": cfg.runpod.poll_interval_s,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tunedeck-cloud-bench-") as tmp:
        os.environ["TUNEDECK_DATA_DIR"] = str(Path(tmp) / "data")
        os.environ["TUNEDECK_CONFIG_DIR"] = str(Path(tmp) / "config")
        result = asyncio.run(one_run(args.steps, Path(tmp)))
    delays = result["delays"]
    print(
        f"run: {result['status']}, {len(delays)} points, poll every {result['poll_interval_s']} s"
    )
    for phase, spent in result["phases"].items():
        print(f"  {phase:<13} {spent['seconds']:7.1f} s  ${spent['dollars']:.5f}")
    if delays:
        p50, p99 = percentile(delays, 0.5), percentile(delays, 0.99)
        print(
            f"metric delay (creation on the pod -> store): p50 {p50:.2f} s, p99 {p99:.2f} s, "
            f"max {max(delays):.2f} s, mean {statistics.fmean(delays):.2f} s"
        )
        print(f"  ratio p99 / {DELAY_TARGET_S:g} s target: {p99 / DELAY_TARGET_S:.2f}")
    after, download = result["after_last_step_s"], result["collecting_s"] or 0.0
    if after is not None:
        print(
            f"paid after the trainer's last step until the terminate call: {after:.1f} s "
            f"(artifact download, the collecting phase: {download:.1f} s)"
        )
        budget = AFTER_LAST_STEP_TARGET_S + download
        target = f"({AFTER_LAST_STEP_TARGET_S:g} s + download)"
        print(f"  ratio {after:.1f} s / {target}: {after / budget:.2f}")
    return 0 if result["status"] == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
