"""P17's engine side: Qwen3-TTS, F5-TTS and Fish Speech at real size with random weights.

Run with the ``torch-tts`` environment's interpreter (``bench.p11_torch_tts`` does):
``python bench/torch_tts_engines.py MODELS_DIR ROUNDS THREADS [qwen3tts,f5,fish]``. It
builds each model once in ``MODELS_DIR`` with the library's own classes at the published
sizes (random weights: the hub cannot be reached here), loads it with the calls Bragi's
engine makes, and times one sentence, the unit Bragi streams in: its time is the time to
first audio, and it ÷ the audio's length is the real-time factor. Random weights never say
stop, so the lengths are set: Qwen3-TTS 24 frames (its stop token's row zeroed), Fish
Speech 43 frames (about 2 s each), F5-TTS what its duration estimate gives for the
sentence and a 3 s reference. Prints one JSON object per engine.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

SENTENCE = "Good morning, how are you today?"
REFERENCE_TEXT = "Ever tried. Ever failed. No matter."


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def reference(seconds: float, rate: int) -> np.ndarray:
    """Noise shaped like speech: bursts and pauses (the weights are random anyway)."""
    rng = np.random.default_rng(0)
    samples = rng.uniform(-0.3, 0.3, round(seconds * rate)).astype(np.float32)
    envelope = (np.sin(np.linspace(0, 6 * np.pi, samples.size)) > -0.3).astype(np.float32)
    return samples * envelope


# --- Qwen3-TTS 0.6B CustomVoice -----------------------------------------------------------


def build_qwen(out: Path) -> None:
    from qwen_tts.core.models.configuration_qwen3_tts import Qwen3TTSConfig
    from qwen_tts.core.models.modeling_qwen3_tts import Qwen3TTSForConditionalGeneration
    from qwen_tts.core.tokenizer_12hz.configuration_qwen3_tts_tokenizer_v2 import (
        Qwen3TTSTokenizerV2Config,
    )
    from qwen_tts.core.tokenizer_12hz.modeling_qwen3_tts_tokenizer_v2 import (
        Qwen3TTSTokenizerV2Model,
    )
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import EncodecFeatureExtractor, Qwen2TokenizerFast

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    special += ["<|tts_pad|>", "<|tts_bos|>", "<|tts_eos|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(["assistant\n user\n system\n"] * 50, trainer)
    tokenizer = Qwen2TokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    tokenizer.save_pretrained(out)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in special}
    # The published 0.6B shapes: talker 1024 wide and 28 deep, code predictor 1024 x 5.
    layer = dict(
        hidden_size=1024,
        intermediate_size=3072,
        num_attention_heads=16,
        num_key_value_heads=8,
        head_dim=128,
        num_code_groups=16,
    )
    talker = dict(
        layer,
        vocab_size=3072,
        num_hidden_layers=28,
        text_hidden_size=2048,
        text_vocab_size=len(tokenizer),
        rope_scaling={"rope_type": "default", "mrope_section": [24, 20, 20], "interleaved": True},
        codec_language_id={"english": 2050},
        spk_id={"ryan": 3061},
        spk_is_dialect={"ryan": False},
        codec_pad_id=2148,
        codec_bos_id=2149,
        codec_eos_token_id=2150,
        codec_think_id=2154,
        codec_nothink_id=2155,
        codec_think_bos_id=2156,
        codec_think_eos_id=2157,
        code_predictor_config=dict(layer, vocab_size=2048, num_hidden_layers=5),
    )
    config = Qwen3TTSConfig(
        talker_config=talker,
        tokenizer_type="qwen3_tts_tokenizer_12hz",
        tts_model_size="0b6",
        tts_model_type="custom_voice",
        im_start_token_id=ids["<|im_start|>"],
        im_end_token_id=ids["<|im_end|>"],
        tts_pad_token_id=ids["<|tts_pad|>"],
        tts_bos_token_id=ids["<|tts_bos|>"],
        tts_eos_token_id=ids["<|tts_eos|>"],
    )
    model = Qwen3TTSForConditionalGeneration(config)
    with torch.no_grad():  # never stop: every sentence is max_new_tokens long
        model.talker.codec_head.weight[2150].zero_()
    model.save_pretrained(out)
    saved = json.loads((out / "config.json").read_text())
    saved.pop("speaker_encoder_config", None)
    (out / "config.json").write_text(json.dumps(saved))
    (out / "generation_config.json").write_text(json.dumps({"max_new_tokens": 2048}))
    # The 12 Hz codec at its default (published) size; codebook_dim has no default.
    codec = Qwen3TTSTokenizerV2Model(
        Qwen3TTSTokenizerV2Config(decoder_config={"codebook_dim": 512})
    )
    codec.save_pretrained(out / "speech_tokenizer")
    EncodecFeatureExtractor(feature_size=1, sampling_rate=24000).save_pretrained(
        out / "speech_tokenizer"
    )


def measure_qwen(out: Path, rounds: int) -> dict[str, Any]:
    from qwen_tts import Qwen3TTSModel

    load, model = _timed(
        lambda: Qwen3TTSModel.from_pretrained(
            str(out), device_map="cpu", dtype=torch.float32, attn_implementation="sdpa"
        )
    )

    def speak() -> np.ndarray:
        waves, _rate = model.generate_custom_voice(
            SENTENCE, language="english", speaker="ryan", max_new_tokens=25
        )
        return np.asarray(waves[0])

    return _rounds("Qwen3-TTS 0.6B CustomVoice", load, speak, 24_000, rounds)


# --- F5-TTS v1 Base ------------------------------------------------------------------------


def build_f5(out: Path) -> None:
    from f5_tts.model import CFM, DiT
    from f5_tts.model.utils import get_tokenizer
    from safetensors.torch import save_file
    from vocos import Vocos

    folder = out / "F5TTS_v1_Base"
    folder.mkdir(parents=True, exist_ok=True)
    symbols = [" ", *"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'-"]
    (folder / "vocab.txt").write_text("\n".join(symbols) + "\n")
    vocab, size = get_tokenizer(str(folder / "vocab.txt"), "custom")
    transformer = DiT(  # F5TTS_v1_Base.yaml's arch
        dim=1024,
        depth=22,
        heads=16,
        ff_mult=2,
        text_dim=512,
        text_mask_padding=True,
        conv_layers=4,
        pe_attn_head=None,
        text_num_embeds=size,
        mel_dim=100,
    )
    mel = dict(
        n_fft=1024,
        hop_length=256,
        win_length=1024,
        n_mel_channels=100,
        target_sample_rate=24000,
        mel_spec_type="vocos",
    )
    model = CFM(transformer=transformer, mel_spec_kwargs=mel, vocab_char_map=vocab)
    weights = {"ema_model." + k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(weights, str(folder / "model_1250000.safetensors"))
    vocos = out / "vocos"
    vocos.mkdir(exist_ok=True)
    (vocos / "config.yaml").write_text(  # charactr/vocos-mel-24khz's
        "feature_extractor:\n  class_path: vocos.feature_extractors.MelSpectrogramFeatures\n"
        "  init_args: {sample_rate: 24000, n_fft: 1024, hop_length: 256, n_mels: 100, "
        "padding: center}\nbackbone:\n  class_path: vocos.models.VocosBackbone\n"
        "  init_args: {input_channels: 100, dim: 512, intermediate_dim: 1536, num_layers: 8}\n"
        "head:\n  class_path: vocos.heads.ISTFTHead\n"
        "  init_args: {dim: 512, n_fft: 1024, hop_length: 256, padding: center}\n"
    )
    torch.save(
        Vocos.from_hparams(str(vocos / "config.yaml")).state_dict(), vocos / "pytorch_model.bin"
    )


def measure_f5(out: Path, rounds: int, nfe_step: int) -> dict[str, Any]:
    from f5_tts.infer.utils_infer import infer_batch_process, load_model, load_vocoder
    from f5_tts.model import DiT

    from bragi.backends.f5_engine import _tensors, architecture

    checkpoint = out / "F5TTS_v1_Base" / "model_1250000.safetensors"

    def load() -> tuple[Any, Any]:
        arch, ema = architecture(_tensors(checkpoint), "v1")
        model = load_model(
            DiT,
            arch,
            str(checkpoint),
            vocab_file=str(checkpoint.parent / "vocab.txt"),
            use_ema=ema,
            device="cpu",
        )
        vocoder = load_vocoder("vocos", is_local=True, local_path=str(out / "vocos"), device="cpu")
        return model, vocoder

    seconds, (model, vocoder) = _timed(load)
    ref = torch.from_numpy(reference(3.0, 24_000)).unsqueeze(0)

    def speak() -> np.ndarray:
        waves = infer_batch_process(
            (ref, 24_000),
            REFERENCE_TEXT,
            [SENTENCE],
            model,
            vocoder,
            progress=None,
            nfe_step=nfe_step,
            device="cpu",
            streaming=True,
            chunk_size=24_000 * 3600,
        )
        return np.concatenate([np.asarray(w) for w, _ in waves])

    label = f"F5-TTS v1 Base, {nfe_step} steps, 3 s reference"
    return _rounds(label, seconds, speak, 24_000, rounds)


# --- Fish Speech, an S1-mini-sized DualAR ----------------------------------------------------


def build_fish(out: Path) -> None:
    import base64
    from importlib import resources

    from fish_speech.models.text2semantic.llama import DualARModelArgs, DualARTransformer
    from fish_speech.tokenizer import ALL_SPECIAL_TOKENS, SEMANTIC_TOKEN_TEMPLATE, FishTokenizer
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    out.mkdir(parents=True, exist_ok=True)
    (out / "tokenizer.tiktoken").write_text(
        "".join(f"{base64.b64encode(bytes([b])).decode()} {b}\n" for b in range(256))
    )
    # The codec's semantic codebook has 4096 codes: as many semantic tokens.
    special = [t for t in ALL_SPECIAL_TOKENS if not t.startswith("<|semantic:")]
    special += [SEMANTIC_TOKEN_TEMPLATE.format(i=i) for i in range(4096)]
    tokenizer = FishTokenizer(str(out / "tokenizer.tiktoken"), special)
    (out / "special_tokens.json").write_text(json.dumps(tokenizer.all_special_tokens_with_ids))
    # About S1-mini's 0.5B: a Qwen-like slow AR, a 4-layer fast AR. The vocabulary is only
    # the bytes and special tokens: a random slow AR samples any token, and one past the
    # semantic ones would index past the fast AR's codebook (a trained one never does), so
    # the output layer's cost (S1-mini's has about 155k rows) is understated here.
    args = DualARModelArgs(
        vocab_size=len(tokenizer.all_special_tokens_with_ids) + 256,
        n_layer=28,
        n_head=16,
        dim=1024,
        intermediate_size=3072,
        n_local_heads=8,
        head_dim=128,
        max_seq_len=4096,
        codebook_size=4096,
        num_codebooks=10,
        n_fast_layer=4,
        fast_dim=1024,
        fast_n_head=16,
        fast_n_local_heads=8,
        fast_head_dim=64,
        fast_intermediate_size=3072,
        use_gradient_checkpointing=False,
    )
    args.save(str(out / "config.json"))
    torch.save(DualARTransformer(args, tokenizer=tokenizer).state_dict(), out / "model.pth")
    config = OmegaConf.load(str(resources.files("fish_speech") / "configs" / "modded_dac_vq.yaml"))
    torch.save(instantiate(config).state_dict(), out / "codec.pth")  # fish-speech's own size


def measure_fish(out: Path, rounds: int) -> dict[str, Any]:
    from fish_speech.models.text2semantic.inference import generate_long, init_model

    from bragi.backends.fish_engine import _load_codec

    def load() -> tuple[Any, Any, Any]:
        model, decode_one_token = init_model(str(out), "cpu", torch.float32, compile=False)
        return model, decode_one_token, _load_codec(None, out / "codec.pth", "cpu", torch.float32)

    seconds, (model, decode_one_token, codec) = _timed(load)
    with torch.inference_mode():
        samples = torch.from_numpy(reference(3.0, 44_100))[None, None]
        codes = codec.encode(samples, torch.tensor([samples.shape[-1]]))[0][0]

    def speak() -> np.ndarray:
        with torch.inference_mode():
            for response in generate_long(
                model=model,
                device="cpu",
                decode_one_token=decode_one_token,
                text=SENTENCE,
                max_new_tokens=44,
                prompt_text=[REFERENCE_TEXT],
                prompt_tokens=[codes],
            ):
                if response.action == "sample":
                    spoken = response.codes
                    wave = codec.decode(spoken[None], torch.tensor([spoken.shape[1]]))[0]
                    return wave.numpy().reshape(-1)
        raise RuntimeError("nothing generated")

    return _rounds("Fish Speech, S1-mini-sized", seconds, speak, 44_100, rounds)


def _rounds(
    label: str, load: float, speak: Callable[[], np.ndarray], rate: int, rounds: int
) -> dict[str, Any]:
    if rounds > 1:
        speak()  # warm-up, not kept (a single round is a minute or more: it dwarfs the first
        # call's extra cost)
    times, audio = [], 0.0
    for _ in range(rounds):
        seconds, samples = _timed(speak)
        times.append(seconds)
        audio = samples.size / rate
    first = statistics.median(times)
    return {
        "engine": label,
        "load_s": load,
        "first_audio_s": first,
        "audio_s": audio,
        "rtf": first / audio,
        "samples": times,
    }


def main() -> int:
    root, rounds = Path(sys.argv[1]), int(sys.argv[2])
    torch.set_num_threads(int(sys.argv[3]))
    wanted = sys.argv[4].split(",") if len(sys.argv) > 4 else None
    for name, build, measure in (
        ("qwen3tts", build_qwen, lambda p: measure_qwen(p, rounds)),
        ("f5", build_f5, lambda p: measure_f5(p, rounds, nfe_step=16)),
        ("fish", build_fish, lambda p: measure_fish(p, rounds)),
    ):
        if wanted is not None and name not in wanted:
            continue
        path = root / name
        done = path / ".built"
        if not done.exists():
            torch.manual_seed(0)
            build(path)
            done.touch()
        print(json.dumps({"id": name, **measure(path)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
