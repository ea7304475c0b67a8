"""Prefect used properly: skipping unchanged inputs, incoming files, caching after a crash, the training slot,
the failure hook with a notification block. Real Prefect server (test harness), real MLflow store."""

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from mlflow import MlflowClient

from tests.conftest import REPO, TRAIN_FAST, ticket_rows, write_config, write_jsonl
from tunesmith.curation.records import normalize_text
from tunesmith.flows.pipeline import SKIPPED, finetune_pipeline
from tunesmith.tasks.orchestration import training_slot


def test_unchanged_inputs_skip_training_and_incoming_files_trigger_it(
    prefect_server, mlflow_uri, tmp_path, tiny_model, small_tickets
):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    config = write_config(
        tmp_path / "run.yaml", small_tickets, tiny_model, TRAIN_FAST + "promotion:\n  enabled: false\n"
    )
    config.write_text(
        config.read_text().replace("  format: classification\n", f"  format: classification\n  incoming: {incoming}\n")
    )
    assert finetune_pipeline(str(config), return_state=True).name == "Trained"
    skipped = finetune_pipeline(str(config), return_state=True)
    assert skipped.name == SKIPPED and skipped.is_completed()

    corpus = [json.loads(line) for line in small_tickets.read_text().splitlines()]
    known = {normalize_text(r["text"]) for r in corpus}
    fresh = [r for r in ticket_rows() if normalize_text(r["text"]) not in known][:8]
    existing = corpus[0]
    write_jsonl(incoming / "2026-11-23.jsonl", [existing] + fresh)  # one copy of a corpus row, eight new rows
    again = finetune_pipeline(str(config), return_state=True)
    assert again.name == "Trained"
    client = MlflowClient(mlflow_uri)
    curation = client.get_run(
        next(r for r in client.search_runs([client.get_experiment_by_name("e2e").experiment_id],
                                           filter_string=f"tags.`mlflow.parentRunId` = '{again.result().run_id}'")
             if r.info.run_name == "curation").info.run_id
    )  # fmt: skip
    assert curation.data.metrics["read"] == 169 and curation.data.metrics["exact_duplicates"] == 1


def test_a_rerun_after_a_crash_reuses_the_cached_curation_and_baselines(
    prefect_server, mlflow_uri, tmp_path, tiny_model, small_tickets
):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    config = write_config(tmp_path / "run.yaml", small_tickets, tiny_model, TRAIN_FAST)
    crashed = finetune_pipeline(str(config), ["training.learning_rate=1e30"], return_state=True)
    assert crashed.is_failed() and "training diverged" in str(crashed.message) + str(
        crashed.result(raise_on_failure=False)
    )
    rerun = finetune_pipeline(str(config), return_state=True)
    assert rerun.is_completed()
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[rerun.state_details.flow_run_id]))
        )
    states = {r.name.rsplit("-", 1)[0]: r.state.name for r in runs}
    assert states["curate-data"] == "Cached" and states["measure-baselines"] == "Cached"
    assert states["train"] == "Completed"

    shutil.rmtree(tmp_path / "runs" / "cache")  # a cached result whose files are gone is computed again
    assert finetune_pipeline(str(config), ["retraining.skip_unchanged=false"], return_state=True).is_completed()


def test_two_trainings_never_hold_the_slot_at_once(prefect_server):
    spans = []

    def train():
        with training_slot("cpu"):
            start = time.monotonic()
            time.sleep(1.0)
            spans.append((start, time.monotonic()))

    threads = [threading.Thread(target=train) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    (a_start, a_end), (b_start, b_end) = sorted(spans)
    assert b_start >= a_end - 0.05


HOLD_SLOT = """
import sys, time
from tunesmith.tasks.orchestration import training_slot
print("asking", flush=True)
with training_slot("cpu", sys.argv[1]) as waited:
    print(f"held after {waited:.2f}", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_without_a_server_the_slot_is_a_lock_released_when_its_holder_is_killed(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    name = f"test-slot-{uuid.uuid4().hex[:8]}"

    def start(hold_s: str) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-c", HOLD_SLOT, name, hold_s], stdout=subprocess.PIPE,
                                   text=True, env=env, cwd=REPO)  # fmt: skip
        assert process.stdout.readline().strip() == "asking"
        return process

    holder = start("600")
    assert holder.stdout.readline().startswith("held after")
    waiter = start("0")
    time.sleep(3)
    assert waiter.poll() is None  # still waiting for the slot
    holder.kill()
    out, _ = waiter.communicate(timeout=60)
    assert waiter.returncode == 0 and float(out.split()[-1]) >= 2.5


class _Recorder(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 - the http.server API
        _Recorder.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Recorder.received = []
    yield f"http://127.0.0.1:{server.server_port}/hook", _Recorder.received
    server.shutdown()


def test_a_failed_run_is_recorded_and_notified_through_a_prefect_block(
    prefect_server, mlflow_uri, tmp_path, tiny_model, webhook
):
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    url, received = webhook
    CustomWebhookNotificationBlock(name="test-hook", url=url, json_data={"text": "{{subject}}: {{body}}"},
                                   allow_private_urls=True).save("tunesmith-failures", overwrite=True)  # fmt: skip
    rows = [{"text": f"ticket {i}", "label": "billing"} for i in range(20)] + [{"text": "?", "label": "spam"}] * 5
    notify = "orchestration:\n  notify_block: custom-webhook/tunesmith-failures\n"
    config = write_config(
        tmp_path / "run.yaml", write_jsonl(tmp_path / "bad.jsonl", rows), tiny_model, TRAIN_FAST + notify
    )
    state = finetune_pipeline(str(config), return_state=True)
    assert state.is_failed()
    (record,) = [json.loads(line) for line in (tmp_path / "runs" / "failures.jsonl").read_text().splitlines()]
    assert record["flow"] == "finetune-pipeline" and "rows rejected" in record["message"]
    assert (
        len(received) == 1
        and "finetune-pipeline failed" in received[0]["text"]
        and "rows rejected" in received[0]["text"]
    )


def test_library_code_is_part_of_every_cache_key(prefect_server, mlflow_uri, tmp_path, tiny_model, small_tickets,
                                                 monkeypatch):  # fmt: skip
    """Cached curation and baselines are reused for the same inputs and the same code, and computed again when
    the library's code changes (an upgrade or a local edit), as if its version were different."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from tunesmith.flows.decide import decide_flow

    def cached_tasks(state) -> dict[str, str]:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
            )
        names = ("curate-data", "measure-baselines")
        return {r.name.rsplit("-", 1)[0]: r.state.name for r in runs if r.name.rsplit("-", 1)[0] in names}

    config = str(write_config(tmp_path / "run.yaml", small_tickets, tiny_model, TRAIN_FAST))
    first = decide_flow(config, return_state=True)
    assert cached_tasks(first) == {"curate-data": "Completed", "measure-baselines": "Completed"}
    assert cached_tasks(decide_flow(config, return_state=True)) == {
        "curate-data": "Cached",
        "measure-baselines": "Cached",
    }
    for stage in ("curation", "decision"):
        monkeypatch.setattr(f"tunesmith.tasks.{stage}.code_version", lambda: "0.1.0+another-source")
    changed = decide_flow(config, return_state=True)
    assert cached_tasks(changed) == {"curate-data": "Completed", "measure-baselines": "Completed"}


def test_the_code_version_changes_with_any_library_source(tmp_path):
    from tunesmith.resources import package_file
    from tunesmith.versioning import code_version, source_hash, tunesmith_version

    copy = shutil.copytree(package_file("tunesmith") / "curation", tmp_path / "curation")
    before = source_hash(copy)
    with (copy / "dedup.py").open("a") as f:
        f.write("\n# a one-line change\n")
    assert source_hash(copy) != before
    assert code_version().startswith(tunesmith_version() + "+") and tunesmith_version() != "0+unknown"
    assert code_version().endswith(source_hash(package_file("tunesmith")))
