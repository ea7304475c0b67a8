"""The forgetting benchmarks scored by a vLLM server: where it is chosen, how each trained model is served, how its
server fails and stops, and (with vLLM installed, TUNESMITH_TEST_VLLM naming its server command) that it scores
the same questions the same way as lm-eval's HF backend, base model and LoRA adapter alike."""

import json
import os
import shlex
import stat
import sys
from pathlib import Path

import pytest

from tunesmith.config.schema import ForgettingConfig
from tunesmith.errors import UsageError
from tunesmith.forgetting.vllm_server import (
    ServedModel,
    VllmFailed,
    choose_backend,
    served_trained,
    server_command,
    vllm_server,
)
from tunesmith.records import Precision, TrainedModel

VLLM = os.environ.get("TUNESMITH_TEST_VLLM")  # e.g. "/opt/vllm/bin/vllm serve"


def executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_vllm_scores_only_where_it_can_run(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert choose_backend(ForgettingConfig(), "cpu").name == "hf"
    missing = choose_backend(ForgettingConfig(), "cuda")
    assert missing.name == "hf" and "not found" in missing.why
    found = ForgettingConfig(vllm={"command": [str(executable(tmp_path / "vllm")), "serve"]})
    chosen = choose_backend(found, "cuda", ["lora"])
    assert chosen.name == "vllm" and chosen.command == (str(tmp_path / "vllm"), "serve")
    assert choose_backend(found, "cuda", ["lora", "full", "ia3"]).name == "vllm"
    # Bottleneck adapters and prefix tuning do not fold into the weights vLLM loads: both runs stay on HF.
    assert "cannot run what adapter, prefix trains" in choose_backend(found, "cuda", ["prefix", "adapter"]).why
    assert choose_backend(found.model_copy(update={"backend": "hf"}), "cuda").name == "hf"

    with pytest.raises(UsageError, match="cannot be found") as error:
        choose_backend(ForgettingConfig(backend="vllm"), "cuda")
    assert error.value.where == "forgetting.vllm.command"
    with pytest.raises(UsageError, match="cannot run what prefix trains"):
        choose_backend(found.model_copy(update={"backend": "vllm"}), "cuda", ["prefix"])
    assert choose_backend(found.model_copy(update={"backend": "vllm"}), "cpu").name == "vllm"  # vLLM's CPU build


def trained(tmp_path: Path, method: str, adapter: dict | None = None, merged_dir: str | None = None) -> TrainedModel:
    out = tmp_path / method
    out.mkdir()
    if adapter is not None:
        (out / "adapter_config.json").write_text(json.dumps(adapter))
    return TrainedModel("base-path", str(out), method, "float32", {}, {}, merged_dir=merged_dir)


def test_each_trained_model_is_served_as_vllm_can_load_it(tmp_path):
    merges = []

    def merge():
        merges.append(1)
        return "merged-now"

    lora = trained(tmp_path, "lora", {"peft_type": "LORA", "r": 12})
    assert served_trained("base-path", lora, merge) == ServedModel("merged-now")  # merged unless asked
    assert served_trained("base-path", lora, merge, lora=True) == ServedModel("base-path", lora.output_dir, 16)
    assert ServedModel("base-path", lora.output_dir, 16).name == "tuned"
    dora = trained(tmp_path, "dora", {"peft_type": "LORA", "r": 16, "use_dora": True})
    assert served_trained("base-path", dora, merge, lora=True) == ServedModel("merged-now")
    extra = trained(tmp_path, "qlora", {"peft_type": "LORA", "r": 16, "modules_to_save": ["lm_head"]}, "saved")
    assert served_trained("base-path", extra, merge, lora=True) == ServedModel("saved")  # merged at training
    full = trained(tmp_path, "full")
    assert served_trained("base-path", full, merge) == ServedModel(full.output_dir)
    assert merges == [1, 1]


def test_the_server_command_serves_the_adapter_as_a_lora(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 131072}))
    argv = server_command(["vllm", "serve"], ServedModel(str(tmp_path), "adapter-dir", 16), "bfloat16", 8000, 7)
    assert argv[:4] == ["vllm", "serve", "--model", str(tmp_path)]
    joined = " ".join(argv)
    assert "--max-model-len 4096" in joined and "--dtype bfloat16" in joined and "--seed 7" in joined
    assert "--enable-lora" in joined and "--lora-modules tuned=adapter-dir" in joined and "--max-lora-rank 16" in joined
    assert "--enable-lora" not in server_command(["vllm"], ServedModel(str(tmp_path)), "float32", 1, 1)


def test_a_server_that_exits_before_it_is_ready_fails_with_its_last_lines(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    dies = [sys.executable, "-c", "import sys; print('No CUDA GPUs are available'); sys.exit(3)"]
    server = vllm_server(dies, ServedModel(str(tmp_path)), "float32", 1, ForgettingConfig().vllm, tmp_path / "log")
    with pytest.raises(VllmFailed, match="exited with code 3") as error, server:
        pass
    assert "No CUDA GPUs are available" in error.value.problem and error.value.where == str(tmp_path / "log")


def test_a_server_is_stopped_when_its_block_ends(tmp_path):
    """A stand-in that answers /health as vLLM does, so that the stop is what is tested: its pid is gone after."""
    (tmp_path / "config.json").write_text("{}")
    script = tmp_path / "serve.py"
    script.write_text(
        "import http.server, os, sys\n"
        "port = int(sys.argv[sys.argv.index('--port') + 1])\n"
        "open(os.environ['PID_FILE'], 'w').write(str(os.getpid()))\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers()\n"
        "http.server.HTTPServer(('127.0.0.1', port), H).serve_forever()\n"
    )
    os.environ["PID_FILE"] = str(tmp_path / "pid")
    try:
        with vllm_server([sys.executable, str(script)], ServedModel(str(tmp_path)), "float32", 1,
                         ForgettingConfig().vllm, tmp_path / "log") as url:  # fmt: skip
            assert url.startswith("http://127.0.0.1:")
            pid = int((tmp_path / "pid").read_text())
            os.kill(pid, 0)  # running
    finally:
        del os.environ["PID_FILE"]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.slow
@pytest.mark.skipif(not VLLM, reason="set TUNESMITH_TEST_VLLM to a vLLM server command, e.g. 'vllm serve'")
def test_vllm_scores_the_same_questions_as_the_hf_backend(tmp_path):
    """The embedded model and a LoRA adapter on it, scored through the forgetting stage by both backends: the
    same answers on at least 95% of the questions (float32 on both; near-ties may flip in the last digits)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from tests.conftest import LABELS, REPO, write_config
    from tunesmith.config import load_config
    from tunesmith.forgetting.stage import base_scorable, run_forgetting, run_forgetting_baseline, trained_scorable
    from tunesmith.models.load import load_model
    from tunesmith.models.resolve import resolve_model
    from tunesmith.records import PreparedModel

    cache = Path(os.environ.get("TUNESMITH_MODEL_CACHE", "~/.cache/tunesmith/models")).expanduser()
    base_path = resolve_model("smollm2-135m-instruct", cache)
    precision = Precision("cpu", "float32", "test")
    model, tokenizer = load_model(base_path, precision)
    torch.manual_seed(0)
    peft = get_peft_model(model, LoraConfig(r=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    with torch.no_grad():
        for name, weight in peft.named_parameters():
            if "lora_B" in name:
                weight.mul_(0.05)  # an adapter that moves the answers a little, as a short training does
    adapter = tmp_path / "adapter"
    peft.save_pretrained(str(adapter))
    tokenizer.save_pretrained(str(adapter))
    tuned = TrainedModel(base_path, str(adapter), "lora", "float32", {}, {}, can_merge=True)
    assert LABELS  # the config below is a classification run; only its forgetting section matters here

    prepared = PreparedModel(base_path, precision)
    command = json.dumps(shlex.split(VLLM))
    scores = {}
    for backend in ("hf", "vllm"):
        extra = (f"forgetting:\n  backend: {backend}\n  tier: smoke\n  limit: 60\n  vllm:\n    command: {command}\n"
                 "    args: [--enforce-eager]\n    startup_timeout_s: 600\n")  # fmt: skip
        config = load_config(
            write_config(tmp_path / f"{backend}.yaml", REPO / "data" / "tickets.jsonl", base_path, extra)
        )
        work = tmp_path / backend
        before = run_forgetting_baseline(config, prepared, base_scorable(prepared), work, backend, ["lora"])
        assert before["suite"]["backend"] == backend
        after = run_forgetting(config, trained_scorable(prepared, tuned, work), before, work)
        scores[backend] = (before["scores"]["general_knowledge"], after.after["general_knowledge"])
        if backend == "vllm":  # the adapter was merged, and vLLM served the merged folder
            assert f"--model {work / 'merged'} " in (work / "vllm-server.log").read_text().splitlines()[0]

    for hf, vllm in zip(scores["hf"], scores["vllm"], strict=True):
        assert hf["n"] == vllm["n"] == 60
        agree = sum(a == b for a, b in zip(hf["correct"], vllm["correct"], strict=True)) / 60
        assert agree >= 0.95, (agree, hf["acc"], vllm["acc"])
