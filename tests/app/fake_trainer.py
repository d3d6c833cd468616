"""A stand-in trainer for the launcher and receiver tests: standard library only.

Started as ``python fake_trainer.py --config C --execution-id ID`` with the contract's
environment, it behaves like the real one on the wire: job_started, one metric point per step
(posted in batches, resent until the receiver takes them), job_completed; SIGTERM finishes the
current step and reports job_cancelled. FAKE_* variables choose the scenario:

FAKE_STEPS (20), FAKE_STEP_S (0.02), FAKE_BATCH (5), FAKE_LINGER_S (0: seconds spent "saving"
after a cancel's final alert, before exiting), FAKE_MODE: complete | crash (exit 1 with a
traceback, no final alert) | ignore_term (SIGTERM does nothing) | silent (posts nothing).
Every point and alert is also appended to events.jsonl in the config's output folder, in the
trainer's event-log format (with the job id at top level), as the real trainer does.
FAKE_ENV_DUMP: a file to write the whole environment it was given to, as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request

STOP = False


def _on_term(signum: int, frame: object) -> None:
    global STOP
    STOP = True


def post(url: str, body: dict, headers: dict[str, str], deadline_s: float = 30.0) -> int:
    """POST until the receiver answers (it may be restarting); the status it gave."""
    data = json.dumps(body).encode()
    give_up = time.monotonic() + deadline_s
    delay = 0.05
    while True:
        req = urllib.request.Request(
            url, data=data, headers={"Content-Type": "application/json", **headers}
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status
        except urllib.error.HTTPError as err:
            if err.code < 500:
                return err.code
        except OSError:
            pass
        if time.monotonic() > give_up:
            return 0
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--config", required=True)
    p.add_argument("--execution-id", required=True)
    args = p.parse_args()
    with open(args.config, encoding="utf-8") as f:
        config = json.load(f)
    env = os.environ
    mode = env.get("FAKE_MODE", "complete")
    steps = int(env.get("FAKE_STEPS", "20"))
    step_s = float(env.get("FAKE_STEP_S", "0.02"))
    batch_size = int(env.get("FAKE_BATCH", "5"))
    if mode != "ignore_term":
        signal.signal(signal.SIGTERM, _on_term)
    else:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    seen = {k: k in env for k in ("LD_LIBRARY_PATH", "PYTHONPATH", "PYTHONHOME", "JOB_TOKEN")}
    print("ENV " + json.dumps(seen), flush=True)
    if env.get("FAKE_ENV_DUMP"):
        with open(env["FAKE_ENV_DUMP"], "w", encoding="utf-8") as f:
            json.dump(dict(env), f)
    print(f"CONFIG name={config['name']} resume={config['checkpoint']['resume_from_checkpoint']}")
    print(f"CWD {os.getcwd()}", flush=True)
    job_id = env["JOB_ID"]
    metrics_url, alerts_url = env.get("METRICS_API_URL"), env.get("ALERT_API_URL")
    bearer = {"Authorization": f"Bearer {env.get('JOB_TOKEN', '')}"}
    key = {"X-API-Key": env.get("INTERNAL_API_KEY", "")}
    report = mode != "silent" and metrics_url and alerts_url
    out = config["output"]["output_dir"].replace("{name}", config["name"])
    os.makedirs(out, exist_ok=True)
    event_log = open(os.path.join(out, "events.jsonl"), "a", encoding="utf-8")  # noqa: SIM115

    def record(kind: str, data: dict) -> None:
        line = {"seq": 0, "kind": kind, "job_id": job_id, "data": data}
        event_log.write(json.dumps(line) + "\n")
        event_log.flush()

    def alert(kind: str, **fields: object) -> None:
        body = {"type": kind, "job_id": job_id, "user_id": "local", **fields}
        record("alert", body)
        if report:
            post(alerts_url, body, key)

    alert("job_started", total_steps=steps, model_name=env.get("MODEL_NAME"))
    pending: list[dict] = []
    step = 0
    for step in range(1, steps + 1):
        time.sleep(step_s)
        pending.append({"step": step, "train_loss": 2.0 / step, "epoch": step / steps, "x": step})
        record("metric", pending[-1])
        print(f"step {step}/{steps}", flush=True)
        if mode == "crash" and step == steps // 2:
            print("Traceback (most recent call last):\nRuntimeError: boom", file=sys.stderr)
            return 1
        if len(pending) >= batch_size or STOP or step == steps:
            if report:
                post(metrics_url, {"job_id": job_id, "metrics": pending}, bearer)
            pending = []
        if STOP:
            print("checkpoint saved", flush=True)
            alert("job_cancelled", status="cancelled", current_step=step)
            time.sleep(float(env.get("FAKE_LINGER_S", "0")))
            return 0
    alert("job_completed", current_step=step, total_steps=steps, loss=2.0 / steps, duration=5)
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
