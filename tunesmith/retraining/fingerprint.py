"""Fingerprints of the input data and of the config, and the last run that trained a model from them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from tunesmith.config import RunConfig
from tunesmith.curation.load import input_files, load_inputs, load_test_file

# Keys that change where results go or how runs are watched, not what is trained.
NOT_FINGERPRINTED = {"name", "output_dir", "tracking", "orchestration", "retraining", "comparison", "model_cache_dir"}


@dataclass
class FingerprintCheck:
    data: str  # content hash of every normalized example (and of every rejected row) in the inputs
    config: str
    files: list[str]
    rows: int
    previous_run: str | None = None
    previous_data: str | None = None
    previous_config: str | None = None

    @property
    def unchanged(self) -> bool:
        return self.previous_run is not None and (self.data, self.config) == (self.previous_data, self.previous_config)

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"unchanged": self.unchanged}

    def headline(self) -> str:
        state = (
            "unchanged since the last trained run" if self.unchanged
            else "changed since the last trained run" if self.previous_run else "no earlier trained run of this config"
        )  # fmt: skip
        return f"{self.rows} rows in {len(self.files)} file(s); {state}"


def data_fingerprint(config: RunConfig) -> tuple[str, int, list[str]]:
    """Order-independent hash of the normalized inputs: the same examples give the same hash in any file order."""
    loaded = load_inputs(config.data)
    keys = [e.id for e in loaded.examples] + [f"rejected:{r.raw}" for r in loaded.rejected]
    files = [str(p) for p in input_files(config.data.path, config.data.incoming)]
    rows = loaded.read
    if config.data.test_path is not None:  # a new test set is a reason to run again too
        test = load_test_file(config.data)
        keys += [f"test:{e.id}" for e in test.examples] + [f"test-rejected:{r.raw}" for r in test.rejected]
        files.append(str(config.data.test_path))
        rows += test.read
    digest = hashlib.sha256()
    for key in sorted(keys):
        digest.update(key.encode("utf-8", "backslashreplace"))
    return digest.hexdigest()[:16], rows, files


def config_fingerprint(config: RunConfig) -> str:
    settings = {k: v for k, v in config.model_dump(mode="json").items() if k not in NOT_FINGERPRINTED}
    settings["data"] = {k: v for k, v in settings["data"].items() if k not in ("path", "incoming", "test_path")}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def last_trained_run(client, experiment: str, config_name: str):
    """The most recent finished pipeline run of this config that trained a model, or None."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs(
        [found.experiment_id],
        filter_string=(
            "attributes.status = 'FINISHED' and tags.`tunesmith.kind` = 'pipeline' and "
            f"tags.`tunesmith.config_name` = '{config_name}' and tags.`tunesmith.trained` = 'true'"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def check_inputs(config: RunConfig, client) -> FingerprintCheck:
    data, rows, files = data_fingerprint(config)
    check = FingerprintCheck(data, config_fingerprint(config), files, rows)
    previous = last_trained_run(client, config.tracking.experiment, config.name)
    if previous is not None:
        check.previous_run = previous.info.run_id
        check.previous_data = previous.data.tags.get("tunesmith.data_fingerprint")
        check.previous_config = previous.data.tags.get("tunesmith.config_fingerprint")
    return check
