"""SpeechBrain speech to text: the toolkit's pretrained ASR models (CRDNN, Transformer,
Conformer, wav2vec 2.0 with CTC or attention decoders).

SpeechBrain needs torch, so it runs in a worker from its own environment
(``bragi backend install speechbrain``). This module is imported by the server: it only
recognises a model from its files and declares options; the engine is in
:mod:`bragi.backends.speechbrain_engine`, imported by ``load()`` inside the worker.

A model is a hub repo's directory as SpeechBrain lays it out: ``hyperparams.yaml`` (which
builds the modules and names the checkpoints, through its ``pretrainer``) and the
checkpoint files (``asr.ckpt``, ``tokenizer.ckpt``, ...), with ``config.json`` naming the
inference interface and a model card (``README.md``) whose front matter gives the
language. Models with an attention decoder load as ``EncoderDecoderASR``; CTC-only ones
(a ``decoding_function`` in the hyperparams) as ``EncoderASR``. Loading runs what the
hyperparams name, as SpeechBrain always does: load only models from sources you trust.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import yaml
from pydantic import ConfigDict, Field

from bragi.backends.chunked import ChunkedOptions
from bragi.backends.protocol import BackendOptions, Device, ModelKind, SpeechToText
from bragi.backends.support import options_as
from bragi.errors import ModelUnavailableError
from bragi.languages import language_code

__all__ = [
    "BACKEND",
    "HYPERPARAMS",
    "INTERFACES",
    "ModelSpec",
    "SpeechBrainBackend",
    "SpeechBrainOptions",
    "card_languages",
    "inspect_model",
    "read_hyperparams",
]

HYPERPARAMS = "hyperparams.yaml"
Interface = Literal["EncoderDecoderASR", "EncoderASR"]
#: The pretrained ASR interfaces this backend runs, and the hyperparams and modules each
#: needs (SpeechBrain's own ``HPARAMS_NEEDED`` and ``MODULES_NEEDED``).
INTERFACES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "EncoderDecoderASR": (("tokenizer",), ("encoder", "decoder")),
    "EncoderASR": (("tokenizer", "decoding_function"), ("encoder",)),
}
DEFAULT_SAMPLE_RATE = 16_000
_MAX_TEXT_BYTES = 1 << 20  # a hyperparams file or a model card (real ones are a few kB)


class SpeechBrainOptions(ChunkedOptions):
    """The ``options:`` of a SpeechBrain model in the configuration."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    interface: Interface | None = None
    """SpeechBrain's pretrained class to load with; unset: from config.json, else from the
    hyperparams (EncoderASR when they have a ``decoding_function``)."""
    languages: tuple[str, ...] | None = None
    """ISO 639-1 codes the model speaks; unset: from its model card (README.md), else
    ``language``."""
    language: str | None = None
    """The model's language when its card names none; also the language reported when a
    request names none."""
    max_chunk_seconds: float = Field(default=20.0, ge=2, le=300)
    """Longest stretch decoded at once; longer speech is cut at its quietest point. The
    hub's models are trained on utterances of up to about 30 s."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What the files say about a SpeechBrain ASR model, read without torch."""

    interface: Interface
    sample_rate: int
    languages: frozenset[str]  # from the model card; empty when it names none


class _TagsAsData(yaml.SafeLoader):
    """YAML with HyperPyYAML's tags (``!new:``, ``!ref``, ``!name:``, ...) read as plain
    data, so the file's keys can be inspected without building anything."""


def _untagged(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


_TagsAsData.add_multi_constructor("!", _untagged)


def _read_text(path: Path) -> str:
    with path.open("rb") as file:
        data = file.read(_MAX_TEXT_BYTES + 1)
    if len(data) > _MAX_TEXT_BYTES:
        raise ValueError(f"{path.name} is over {_MAX_TEXT_BYTES} bytes")
    return data.decode("utf-8")


def read_hyperparams(model_dir: Path) -> dict[str, Any]:
    """The model's ``hyperparams.yaml`` as data (tags dropped); OSError or ValueError."""
    try:
        data = yaml.load(_read_text(model_dir / HYPERPARAMS), Loader=_TagsAsData)
    except yaml.YAMLError as exc:
        raise ValueError(f"{HYPERPARAMS} is not YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{HYPERPARAMS} is not a mapping")
    return data


def _config_interface(model_dir: Path) -> str | None:
    """``config.json``'s ``{"speechbrain": {"interface": ...}}``, as the hub repos have it."""
    try:
        config = json.loads(_read_text(model_dir / "config.json"))
    except (OSError, ValueError):
        return None
    section = config.get("speechbrain") if isinstance(config, dict) else None
    interface = section.get("interface") if isinstance(section, dict) else None
    return interface if isinstance(interface, str) else None


def _code(value: str) -> str | None:
    """ISO 639-1 from a card's language ("en", "English", "en-US", "pt_BR")."""
    return language_code(value) or language_code(value.replace("_", "-").split("-")[0])


def card_languages(model_dir: Path) -> frozenset[str]:
    """The languages in the model card's front matter (``language: en`` or a list)."""
    try:
        text = _read_text(model_dir / "README.md")
    except (OSError, ValueError):
        return frozenset()
    if not text.startswith("---"):
        return frozenset()
    end = text.find("\n---", 3)
    try:
        front = yaml.safe_load(text[3:end] if end > 0 else "")
    except yaml.YAMLError:
        return frozenset()
    value = front.get("language") if isinstance(front, dict) else None
    values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return frozenset(code for v in values if isinstance(v, str) and (code := _code(v)))


def inspect_model(model_dir: Path, interface: Interface | None = None) -> ModelSpec:
    """Read what loading needs from the files: the interface (``interface``, else
    config.json's, else from the hyperparams), the sample rate and the card's languages.
    Raises ModelUnavailableError saying why the directory is not a model this runs."""
    try:
        hparams = read_hyperparams(model_dir)
    except (OSError, ValueError, RecursionError) as exc:
        raise ModelUnavailableError(f"no SpeechBrain model in {model_dir}: {exc}") from exc
    if not any(model_dir.glob("*.ckpt")):
        raise ModelUnavailableError(f"no SpeechBrain checkpoint (*.ckpt) in {model_dir}")
    declared = _config_interface(model_dir)
    chosen: str
    if interface is not None:
        chosen = interface
    elif declared is not None:
        chosen = declared
    else:  # a CTC-only model decodes with a function of the encoder's output
        chosen = "EncoderASR" if "decoding_function" in hparams else "EncoderDecoderASR"
    if chosen not in INTERFACES:
        raise ModelUnavailableError(
            f"{model_dir} is a SpeechBrain {chosen} model; this backend runs "
            f"{' and '.join(INTERFACES)} (set the interface option to try one)"
        )
    needed_hparams, needed_modules = INTERFACES[chosen]
    modules = hparams.get("modules")
    missing = [key for key in (*needed_hparams, "pretrainer") if key not in hparams]
    missing += [
        f"modules.{key}"
        for key in needed_modules
        if not (isinstance(modules, dict) and key in modules)
    ]
    if missing:
        raise ModelUnavailableError(
            f"{model_dir / HYPERPARAMS} lacks what SpeechBrain's {chosen} needs: "
            f"{', '.join(missing)}"
        )
    rate = hparams.get("sample_rate")
    sample_rate = rate if isinstance(rate, int) and rate > 0 else DEFAULT_SAMPLE_RATE
    return ModelSpec(cast(Interface, chosen), sample_rate, card_languages(model_dir))


class SpeechBrainBackend:
    """Recognises SpeechBrain ASR models; the engine runs in the ``speechbrain`` environment."""

    name: str = "speechbrain"
    kind: ModelKind = ModelKind.STT
    extra: str = "speechbrain"
    options_model: type[BackendOptions] = SpeechBrainOptions
    #: Tested together. PyPI's Linux torchaudio is a CUDA build: on a CPU machine
    #: ``bragi backend install`` removes its native libraries, which ASR never calls.
    requirements: tuple[str, ...] = ("torch==2.13.0", "torchaudio==2.11.0", "speechbrain==1.1.2")
    verify_imports: tuple[str, ...] = ("torch", "speechbrain.inference.ASR")

    def is_available(self) -> bool:
        return True  # the environment is checked when a model loads

    def detect(self, model_dir: Path) -> bool:
        try:
            inspect_model(model_dir)
        except ModelUnavailableError:
            return False
        return True

    def word_timestamps_in(
        self, model_dir: Path | None, device: Device, options: BackendOptions | None
    ) -> bool:
        """SpeechBrain's ASR interfaces give text only."""
        return False

    def load(self, model_dir: Path, device: Device, options: BackendOptions) -> SpeechToText:
        opts = options_as(SpeechBrainOptions, options)
        spec = inspect_model(model_dir, opts.interface)
        # A model is local files: whatever its hyperparams name on the hub (an n-gram LM,
        # a transformers encoder) must fail instead of downloading. huggingface_hub reads
        # this once, when imported: in the engine's worker that is just below. The server
        # has imported it long before, so this never changes how the server downloads.
        if "huggingface_hub" not in sys.modules:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from bragi.backends.speechbrain_engine import load_speechbrain

        return load_speechbrain(model_dir, device, opts, spec)


BACKEND = SpeechBrainBackend()
