"""Recognising and refusing Qwen3-TTS, F5-TTS and Fish Speech models from their files alone.

The server does this without torch (the engines live in workers), from hand-written
``config.json`` files and listings shaped like the hub's repos; the real files, written by
each library, go through the same code in ``tests/torchengines/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bragi.backends.qwen3tts import BACKEND as QWEN
from bragi.errors import ConfigError


def _qwen_dir(tmp_path: Path, name: str = "qwen", **config: Any) -> Path:
    path = tmp_path / name
    (path / "speech_tokenizer").mkdir(parents=True)
    base = {
        "model_type": "qwen3_tts",
        "tokenizer_type": "qwen3_tts_tokenizer_12hz",
        "tts_model_type": "custom_voice",
        "tts_model_size": "1b7",
        "talker_config": {
            "spk_id": {"vivian": 3065, "ryan": 3061, "uncle_fu": 3010, "newcomer": 3099},
            "codec_language_id": {
                "english": 2050,
                "chinese": 2055,
                "beijing_dialect": 2074,
                "german": 2053,
            },
        },
    }
    (path / "config.json").write_text(json.dumps(base | config))
    (path / "speech_tokenizer" / "config.json").write_text(
        json.dumps({"model_type": "qwen3_tts_tokenizer_12hz"})
    )
    return path


def test_qwen_speakers_languages_and_instructions_come_from_config_json(tmp_path: Path) -> None:
    path = _qwen_dir(tmp_path)
    assert QWEN.detect(path)
    QWEN.check(path)
    voices = {v.id: (v.language, v.gender) for v in QWEN.voices_in(path, None)}
    assert voices == {
        "vivian": ("zh", "female"),
        "ryan": ("en", "male"),
        "uncle_fu": ("zh", "male"),
        "newcomer": (None, None),  # a speaker the model card does not describe
    }
    assert QWEN.instructions_in(path, None) == "style"
    small = _qwen_dir(tmp_path, "small", tts_model_size="0b6")
    assert QWEN.instructions_in(small, None) == "none"  # qwen-tts drops it for 0.6B
    design = _qwen_dir(tmp_path, "design", tts_model_type="voice_design")
    assert QWEN.instructions_in(design, None) == "voice"
    assert [v.id for v in QWEN.voices_in(design, None)] == ["designed"]
    base = _qwen_dir(tmp_path, "base", tts_model_type="base")
    assert QWEN.instructions_in(base, None) == "none"
    assert list(QWEN.voices_in(base, None)) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tokenizer_type": "qwen3_tts_tokenizer_25hz"}, "12 Hz models"),
        ({"tts_model_type": "voice_clone_pro"}, "unknown Qwen3-TTS model type"),
        ({"model_type": "qwen3_tts_tokenizer_12hz"}, "speech tokenizer"),
    ],
    ids=["25hz", "unknown-variant", "bare-tokenizer"],
)
def test_qwen_models_bragi_cannot_serve_are_refused_saying_why(
    tmp_path: Path, change: dict[str, str], message: str
) -> None:
    path = _qwen_dir(tmp_path, **change)
    assert QWEN.detect(path)  # recognised, so the refusal names the engine
    with pytest.raises(ConfigError, match=message):
        QWEN.check(path)


def test_a_qwen_model_without_its_speech_tokenizer_is_refused(tmp_path: Path) -> None:
    path = _qwen_dir(tmp_path)
    (path / "speech_tokenizer" / "config.json").unlink()
    with pytest.raises(ConfigError, match=r"speech_tokenizer/config\.json"):
        QWEN.check(path)


def test_other_models_are_not_taken_for_qwen(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    assert not QWEN.detect(other)
    (other / "config.json").write_text("not json")
    assert not QWEN.detect(other)
    assert not QWEN.detect(tmp_path / "missing")


def test_a_refused_model_fails_at_start_up_with_the_reason_and_the_rest_serve(
    tmp_path: Path,
) -> None:
    from bragi.backends.registry import BackendRegistry
    from bragi.config import ModelConfig, Settings
    from bragi.models.configure import build_manager
    from bragi.models.served import ModelState

    refused = _qwen_dir(tmp_path, "old", tokenizer_type="qwen3_tts_tokenizer_25hz")
    fine = _qwen_dir(tmp_path, "fine")
    settings = Settings(
        data_dir=tmp_path / "data",
        models={"old": ModelConfig(model=str(refused)), "fine": ModelConfig(model=str(fine))},
    )
    manager = build_manager(settings, BackendRegistry([QWEN]))
    old = manager.get("old")
    assert old.state is ModelState.FAILED and old.error is not None and "12 Hz" in old.error
    assert manager.get("fine").state is ModelState.AVAILABLE


# --- F5-TTS ------------------------------------------------------------------------------


def _files(root: Path, *names: str) -> Path:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    return root


def test_f5_checkpoints_are_found_in_the_hub_layout_and_one_folder_down(tmp_path: Path) -> None:
    from bragi.backends.f5 import BACKEND as F5
    from bragi.backends.f5 import choose_checkpoint, version_of, vocoder_dir

    hub = _files(
        tmp_path / "hub", "F5TTS_v1_Base/model_1250000.safetensors", "F5TTS_v1_Base/vocab.txt"
    )
    assert F5.detect(hub)
    checkpoint = choose_checkpoint(hub, None)
    assert checkpoint == hub / "F5TTS_v1_Base" / "model_1250000.safetensors"
    assert version_of(checkpoint, None) == "v1"
    # AllTalk's layout: the checkpoint, vocab.txt and vocos/ in one folder.
    flat = _files(
        tmp_path / "flat",
        "model_1200000.pt",
        "vocab.txt",
        "vocos/config.yaml",
        "vocos/pytorch_model.bin",
    )
    assert F5.detect(flat) and version_of(choose_checkpoint(flat, None), None) == "v0"
    assert vocoder_dir(flat, choose_checkpoint(flat, None), None) == flat / "vocos"
    nested = _files(
        tmp_path / "ru", "F5TTS_v1_Base_v2/model_500.safetensors", "F5TTS_v1_Base_v2/vocab.txt"
    )
    assert F5.detect(nested) and version_of(choose_checkpoint(nested, None), None) == "v1"
    assert version_of(choose_checkpoint(nested, None), "v0") == "v0"  # the option wins
    assert not F5.detect(_files(tmp_path / "other", "model.safetensors", "vocab.txt"))


def test_f5_refusals_say_why(tmp_path: Path) -> None:
    from bragi.backends.f5 import BACKEND as F5
    from bragi.backends.f5 import choose_checkpoint, vocoder_dir

    bigvgan = _files(
        tmp_path / "bigvgan", "F5TTS_Base_bigvgan/model_1250000.pt", "F5TTS_Base_bigvgan/vocab.txt"
    )
    with pytest.raises(ConfigError, match="BigVGAN"):
        F5.check(bigvgan)
    e2 = _files(tmp_path / "e2", "E2TTS_Base/model_1200000.safetensors", "E2TTS_Base/vocab.txt")
    with pytest.raises(ConfigError, match="UNetT"):
        F5.check(e2)
    several = _files(
        tmp_path / "several",
        "F5TTS_v1_Base/model_1250000.safetensors",
        "F5TTS_v1_Base/vocab.txt",
        "F5TTS_Base/model_1200000.safetensors",
        "F5TTS_Base/vocab.txt",
        "F5TTS_Base_bigvgan/model_1250000.pt",
        "F5TTS_Base_bigvgan/vocab.txt",
    )
    F5.check(several)  # some can be served
    with pytest.raises(ConfigError, match=r"several F5-TTS checkpoints.*checkpoint option"):
        choose_checkpoint(several, None)
    chosen = choose_checkpoint(several, "F5TTS_Base")
    assert chosen.parent.name == "F5TTS_Base"
    with pytest.raises(ConfigError, match="names no single"):
        choose_checkpoint(several, "F5TTS_Small")
    with pytest.raises(ConfigError, match="charactr/vocos-mel-24khz"):
        vocoder_dir(several, chosen, None)


# --- Fish Speech ---------------------------------------------------------------------------


def _fish_dir(tmp_path: Path, model_type: str, *files: str) -> Path:
    path = _files(tmp_path / model_type, "tokenizer.tiktoken", *files)
    (path / "config.json").write_text(json.dumps({"model_type": model_type}))
    return path


def test_openaudio_s1_mini_is_recognised_and_voiced_only_by_its_default_reference(
    tmp_path: Path,
) -> None:
    from bragi.backends.fish import BACKEND as FISH
    from bragi.backends.fish import FishOptions

    s1 = _fish_dir(tmp_path, "dual_ar", "model.pth", "codec.pth", "special_tokens.json")
    assert FISH.detect(s1)
    FISH.check(s1)
    assert list(FISH.voices_in(s1, FishOptions())) == []  # no built-in voice
    with_default = FishOptions(default_reference="/srv/ada.wav", default_reference_text="Hi.")
    assert [v.id for v in FISH.voices_in(s1, with_default)] == ["default"]
    assert FISH.instructions_in(s1, None) == "style"
    assert not QWEN.detect(s1) and not FISH.detect(_qwen_dir(tmp_path))


@pytest.mark.parametrize(
    ("model_type", "files", "message"),
    [
        ("fish_qwen3_omni", ("model.safetensors", "codec.pth"), "Fish Audio S2.*24 GB"),
        (
            "dual_ar",
            ("model.pth", "firefly-gan-vq-fsq-8x1024-21hz-generator.pth"),
            r"Fish Speech 1\.x",
        ),
        ("dual_ar", ("model.pth",), "missing codec.pth"),
    ],
    ids=["s2", "1.x", "no-codec"],
)
def test_fish_models_bragi_does_not_run_are_refused_saying_why(
    tmp_path: Path, model_type: str, files: tuple[str, ...], message: str
) -> None:
    from bragi.backends.fish import BACKEND as FISH

    path = _fish_dir(tmp_path, model_type, *files)
    assert FISH.detect(path)
    with pytest.raises(ConfigError, match=message):
        FISH.check(path)
