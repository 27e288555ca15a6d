"""Exporting a torch sentence-transformers model (its LoRA adapter already merged into the weights) to an
ONNX folder that ``router_retriever.encoding.onnx_encoder.OnnxEmbedder`` loads: ``model.onnx`` (the transformer's token
vectors, ``last_hidden_state``, with dynamic batch and sequence axes; optionally int8 weights, per channel,
via onnxruntime's ``quantize_dynamic``), the model folder's ``tokenizer.json`` and its pooling and truncation
files, so the onnx encoder pools and truncates as the torch model does.

An export is kept in ``<root>/<key>/``, where the key names what decides its weights (model, adapter weights,
quantization, exporter version). It is written into a temporary folder beside the final one, fsynced, then
renamed into place: a crash leaves no half folder at the final path (at most a hidden ``.<key>.*.tmp``
folder beside it, after a kill), and a process that finds the folder reuses it; two processes exporting at
once both finish, and the first rename wins. Exporting needs the ``onnx`` package (a core dependency)
besides torch.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from router_retriever.core.errors import ModelNotFoundError, RetrieverError
from router_retriever.encoding.onnx_encoder import FEEDS
from router_retriever.indexes.atomic import fsync_dir
from router_retriever.indexes.data_dir import folder_name

Quantize = Literal["none", "int8"]
EXPORTER_VERSION = 2  # bump when the exported graph changes: every key changes with it (2: fused attention)
OPSET = 17
FUSED_MODEL_TYPES = ("bert",)  # transformers model types whose exports get onnxruntime's fused BERT operators
COPIED = ("tokenizer.json", "1_Pooling/config.json", "sentence_bert_config.json", "modules.json")
SAMPLE = ["an example sentence to trace the graph with", "a second, shorter one"]


def export_key(fingerprint: str, quantize: Quantize) -> str:
    """The folder name of an export: readable model stem plus a hash of the model identity with its adapter
    weights' fingerprint (``EncoderSpec.fingerprint``), the quantization and the exporter version."""
    return folder_name(f"{fingerprint}|quantize={quantize}|exporter={EXPORTER_VERSION}")


def exported(folder: Path, source: Path, load: Callable[[], Any], quantize: Quantize) -> Path:
    """``folder``, exported on first call from the sentence-transformers model that ``load`` returns (read
    from ``source``, whose tokenizer and pooling files are copied); an existing folder is reused as it is.
    Failures are ``ModelNotFoundError`` naming the model and the folder."""
    if folder.is_dir():
        return folder
    try:
        _export_atomically(folder, source, load, quantize)
    except RetrieverError:
        raise
    except Exception as exc:  # the exporter and the quantizer raise many types (tracing, unsupported op, no onnx)
        raise ModelNotFoundError(f"ONNX export of {source} into {folder} failed: {type(exc).__name__}: {exc} "
                                 "(exporting needs torch and the onnx package, both core dependencies)") from exc
    return folder


def _export_atomically(folder: Path, source: Path, load: Callable[[], Any], quantize: Quantize) -> None:
    """Export into a temporary folder beside ``folder``, fsync it and rename it into place; removed on failure."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        write_export(load(), source, staging, quantize)
        _fsync_tree(staging)
        _publish(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _publish(staging: Path, folder: Path) -> None:
    """Rename a finished export into place; another process's identical export, renamed first, wins."""
    staging.chmod(0o755)  # mkdtemp's 0700 would hide the export from other users of a shared volume
    try:
        staging.rename(folder)
    except OSError:
        if not folder.is_dir():
            raise
        shutil.rmtree(staging, ignore_errors=True)
    fsync_dir(folder.parent)


def _fsync_tree(root: Path) -> None:
    """Persist every file of a folder and every folder entry, before the folder is renamed into place."""
    for path in sorted(root.rglob("*"), reverse=True):  # files before the folders that hold them
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
        else:
            fsync_dir(path)
    fsync_dir(root)


def write_export(st: Any, source: Path, out: Path, quantize: Quantize) -> None:
    """Write ``out/model.onnx`` (fp32, or int8 weights) of a loaded sentence-transformers model and copy the
    files of ``source`` the onnx encoder reads (tokenizer, pooling, truncation, module list)."""
    if not (source / "tokenizer.json").is_file():
        raise ModelNotFoundError(f"cannot export {source} to ONNX: it has no tokenizer.json (the onnx encoder's tokenizer)")
    graph = out / ("model-fp32.onnx" if quantize == "int8" else "model.onnx")
    export_graph(st, graph)
    if quantize == "int8":
        quantize_int8(graph, out / "model.onnx")
        graph.unlink()
    for name in COPIED:
        if (source / name).is_file():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, out / name)


def export_graph(st: Any, path: Path) -> None:
    """Trace the model's transformer (keyword inputs, dynamic batch and sequence axes) into an ONNX file whose
    one output is ``last_hidden_state``; a BERT-type model's graph then gets fused operators (``fuse_bert``)."""
    import torch

    transformer = st[0].auto_model
    fusable = transformer.config.model_type in FUSED_MODEL_TYPES
    if fusable:  # onnxruntime's fusion recognises the eager attention's pattern, not scaled_dot_product_attention's
        transformer.set_attn_implementation("eager")

    class TokenVectors(torch.nn.Module):
        """The transformer called with keyword arguments (transformers 5 changed BERT's positional order)."""

        def __init__(self, model: torch.nn.Module, names: list[str]) -> None:
            super().__init__()
            self.model = model
            self.names = names

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(self.names, inputs)), return_dict=True).last_hidden_state

    names = [name for name in FEEDS if name in st.tokenizer.model_input_names]
    sample = st.tokenizer(SAMPLE, padding=True, return_tensors="pt")
    axes = {name: {0: "batch", 1: "sequence"} for name in [*names, "last_hidden_state"]}
    with torch.no_grad(), warnings.catch_warnings():
        # the tracer warns of Python branches on tensor values (transformers' mask code, which checks for tracing)
        # and of index ops; tests/test_onnx_export.py checks the graph against torch at other shapes
        warnings.simplefilter("ignore")
        torch.onnx.export(TokenVectors(transformer, names).eval(), tuple(sample[n] for n in names), str(path),
                          input_names=names, output_names=["last_hidden_state"], dynamic_axes=axes,
                          opset_version=OPSET, dynamo=False)
    if fusable:
        fuse_bert(path, transformer.config.num_attention_heads, transformer.config.hidden_size)


def fuse_bert(path: Path, heads: int, width: int) -> None:
    """Rewrite a BERT graph in place with onnxruntime's fused operators (one ``Attention`` per layer, the
    embedding and skip layer norms, bias + GELU), by onnxruntime's own transformer optimizer: the same vectors
    (float rounding), faster to run (``bench/onnx_speed.py`` measures it)."""
    from onnxruntime.transformers.optimizer import optimize_model

    optimize_model(str(path), model_type="bert", num_heads=heads, hidden_size=width, opt_level=0).save_model_to_file(str(path))


def quantize_int8(fp32: Path, int8: Path) -> None:
    """int8 weights, one scale per output channel (per tensor, all-MiniLM-L6-v2's vectors fall to cosine 0.94
    of fp32 on SciFact documents; per channel, 0.99), by onnxruntime's dynamic quantization: activations are
    quantized per batch at run time."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # fused operators are of onnxruntime's own domain, which ONNX's shape inference cannot type: say float
    quantize_dynamic(fp32, int8, per_channel=True, weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
