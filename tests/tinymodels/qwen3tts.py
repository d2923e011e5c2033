"""Tiny Qwen3-TTS models with random weights, in the hub's real layout, for each variant.

Everything is written by qwen-tts's and transformers' own classes: a byte-level BPE text
tokenizer (``Qwen2TokenizerFast``), the talker and code predictor
(``Qwen3TTSForConditionalGeneration``), and the 12 Hz speech tokenizer
(``Qwen3TTSTokenizerV2Model``) under ``speech_tokenizer/``; ``config.json`` carries the
variant (``tts_model_type``), the size (``tts_model_size``), the speakers and languages.

A random talker never says stop, so a few weights are set to make it stop about where
the real model does: once it has spoken about as many frames as the prompt has text.
The ``<|tts_eos|>`` and ``<|tts_pad|>`` text tokens (what qwen-tts feeds the talker after
the text, at every frame) carry a flag, one hidden dimension that nothing else writes;
every text projection adds a constant in another. The talker's attention is made uniform
(zero keys), and one value reads +1 at flagged positions and -1 at the others, so its mean
over the positions seen so far turns positive once the generated (flagged) frames
outnumber the prompt's text; a third hidden dimension carries that mean to the stop
token's logit. So a sentence's length grows with its text and with ``instructions``, is
the same for every seed, and is never a runaway (tests of the cap set a smaller one).
Its speech is noise: tests assert lengths, formats and differences, not sound.

The script runs with the ``torch-tts`` environment's interpreter:
``build_tiny_qwen3tts(env, directory, variant, size)``.
"""

from __future__ import annotations

from pathlib import Path

from torchenvs import EngineEnv, run_in_env

__all__ = ["LANGUAGES", "SAMPLES_PER_FRAME", "SPEAKERS", "build_tiny_qwen3tts"]

SPEAKERS = ("ryan", "vivian")
LANGUAGES = ("en", "de", "zh", "fr")
SAMPLES_PER_FRAME = 1920  # 24 kHz / 12.5 Hz

_SCRIPT = r"""
import json
import shutil
import sys
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import EncodecFeatureExtractor, Qwen2TokenizerFast

from qwen_tts.core.models.configuration_qwen3_tts import Qwen3TTSConfig
from qwen_tts.core.models.modeling_qwen3_tts import Qwen3TTSForConditionalGeneration
from qwen_tts.core.tokenizer_12hz.configuration_qwen3_tts_tokenizer_v2 import (
    Qwen3TTSTokenizerV2Config,
)
from qwen_tts.core.tokenizer_12hz.modeling_qwen3_tts_tokenizer_v2 import Qwen3TTSTokenizerV2Model

out, variant, size = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
out.mkdir(parents=True, exist_ok=True)
torch.manual_seed(0)

# Text tokenizer: byte-level BPE where "<|im_start|>assistant\n" is three tokens, as in
# Qwen's vocabulary (qwen-tts cuts the prompt by token position).
special = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|tts_pad|>", "<|tts_bos|>", "<|tts_eos|>"
]
bpe = Tokenizer(models.BPE())
bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
bpe.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(
    vocab_size=300, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
)
bpe.train_from_iterator(["assistant\n user\n system\n"] * 50, trainer)
text_tokenizer = Qwen2TokenizerFast(
    tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>"
)
text_tokenizer.save_pretrained(out)
ids = {token: text_tokenizer.convert_tokens_to_ids(token) for token in special}

codec_ids = dict(
    codec_pad_id=2148, codec_bos_id=2149, codec_eos_token_id=2150, codec_think_id=2154,
    codec_nothink_id=2155, codec_think_bos_id=2156, codec_think_eos_id=2157,
)
talker = dict(
    vocab_size=3072, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
    num_attention_heads=2, num_key_value_heads=1, head_dim=16, num_code_groups=16,
    text_hidden_size=32, text_vocab_size=len(text_tokenizer),
    rope_scaling={"rope_type": "default", "mrope_section": [4, 2, 2], "interleaved": True},
    codec_language_id={"english": 2050, "german": 2053, "chinese": 2055, "french": 2061},
    code_predictor_config=dict(
        vocab_size=2048, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, head_dim=16, num_code_groups=16,
    ),
    **codec_ids,
)
speakers = {"ryan": 3061, "vivian": 3065} if variant == "custom_voice" else {}
talker["spk_id"] = speakers
talker["spk_is_dialect"] = {name: False for name in speakers}
speaker_encoder = dict(
    mel_dim=128, enc_dim=32, enc_channels=[32, 32, 32, 32, 96], enc_kernel_sizes=[5, 3, 3, 3, 1],
    enc_dilations=[1, 2, 3, 4, 1], enc_attention_channels=16, enc_res2net_scale=8,
    enc_se_channels=16,
)
config = Qwen3TTSConfig(
    talker_config=talker,
    speaker_encoder_config=speaker_encoder,
    tokenizer_type="qwen3_tts_tokenizer_12hz",
    tts_model_size=size,
    tts_model_type=variant,
    im_start_token_id=ids["<|im_start|>"],
    im_end_token_id=ids["<|im_end|>"],
    tts_pad_token_id=ids["<|tts_pad|>"],
    tts_bos_token_id=ids["<|tts_bos|>"],
    tts_eos_token_id=ids["<|tts_eos|>"],
)
model = Qwen3TTSForConditionalGeneration(config)

# Stop once the generated frames outnumber the prompt's text (see the module docstring).
FLAG, CONSTANT, COUNT = 31, 30, 29
t = model.talker
eos = config.talker_config.codec_eos_token_id
with torch.no_grad():
    text_embedding = t.get_text_embeddings().weight
    text_embedding[:, FLAG] = 0.0
    text_embedding[ids["<|tts_eos|>"], FLAG] = 1.0
    text_embedding[ids["<|tts_pad|>"], FLAG] = 1.0
    fc1, fc2 = t.text_projection.linear_fc1, t.text_projection.linear_fc2
    fc1.weight[:, FLAG] = 0.0
    fc1.weight[FLAG, :] = 0.0
    fc1.weight[FLAG, FLAG] = 10.0  # silu(10) = 10 for a flagged token, 0 for the others
    fc1.bias[FLAG] = 0.0
    fc2.weight[:, FLAG] = 0.0
    for dim in (FLAG, CONSTANT, COUNT):
        fc2.weight[dim, :] = 0.0
        fc2.bias[dim] = 0.0
        t.get_input_embeddings().weight[:, dim] = 0.0
        for embedding in t.code_predictor.get_input_embeddings():
            embedding.weight[:, dim] = 0.0
    fc2.weight[FLAG, FLAG] = 100.0
    fc2.bias[CONSTANT] = 1.0
    for layer in t.model.layers:
        attention = layer.self_attn
        attention.k_proj.weight.zero_()  # uniform attention over the positions so far
        attention.v_proj.weight[0, :] = 0.0
        attention.v_proj.weight[0, FLAG] = 1.0
        attention.v_proj.weight[0, CONSTANT] = -1.0
        attention.o_proj.weight[:, 0] = 0.0
        attention.o_proj.weight[:, attention.head_dim] = 0.0
        for dim in (FLAG, CONSTANT, COUNT):
            attention.o_proj.weight[dim, :] = 0.0
            layer.mlp.down_proj.weight[dim, :] = 0.0
        attention.o_proj.weight[COUNT, 0] = 500.0
    t.codec_head.weight[eos, :] = 0.0
    t.codec_head.weight[eos, COUNT] = 20.0
    # Speakers as loud as the flag, so that each one steers the (otherwise faint) talker.
    for row in (talker.get("spk_id") or {}).values():
        t.get_input_embeddings().weight[row].normal_(std=200.0)
        t.get_input_embeddings().weight[row, [FLAG, CONSTANT, COUNT]] = 0.0
model.save_pretrained(out)

# Qwen3TTSSpeakerEncoderConfig takes no **kwargs: it cannot read its own model_type back.
saved = json.loads((out / "config.json").read_text())
saved["speaker_encoder_config"].pop("model_type", None)
if variant != "base":
    saved.pop("speaker_encoder_config", None)
(out / "config.json").write_text(json.dumps(saved, indent=2))
(out / "generation_config.json").write_text(json.dumps(dict(
    do_sample=True, top_k=50, top_p=1.0, temperature=0.9, repetition_penalty=1.05,
    subtalker_dosample=True, subtalker_top_k=50, subtalker_top_p=1.0, subtalker_temperature=0.9,
    max_new_tokens=2048,
)))

speech = out / "speech_tokenizer"
mimi = dict(
    hidden_size=32, num_filters=4, upsampling_ratios=[8, 6, 5, 4], codebook_size=2048,
    codebook_dim=16, vector_quantization_hidden_dimension=16, num_hidden_layers=1,
    num_attention_heads=2, num_key_value_heads=2, head_dim=16, intermediate_size=64,
    num_quantizers=16, num_semantic_quantizers=1, sliding_window=16, upsample_groups=32,
    frame_rate=12.5,
)
decoder = dict(
    codebook_size=2048, codebook_dim=16, hidden_size=32, latent_dim=32, num_attention_heads=2,
    num_key_value_heads=2, intermediate_size=64, num_hidden_layers=1, num_quantizers=16,
    decoder_dim=32, sliding_window=16,
)
speech_config = Qwen3TTSTokenizerV2Config(
    encoder_config=mimi, decoder_config=decoder, encoder_valid_num_quantizers=16
)
codec = Qwen3TTSTokenizerV2Model(speech_config)
with torch.no_grad():  # its codebooks start empty (trained by running sums): fill them
    for name, parameter in codec.named_parameters():
        if name.endswith("embedding_sum"):
            parameter.normal_()
    # Random layers shrink the signal to ~1e-8: scale the last one to an audible level.
    codes = torch.randint(0, 2048, (1, 16, 25))
    level = codec.decoder(codes).pow(2).mean().sqrt()
    codec.decoder.decoder[-1].conv.weight.mul_(0.1 / level)
    codec.decoder.decoder[-1].conv.bias.zero_()
codec.save_pretrained(speech)
EncodecFeatureExtractor(feature_size=1, sampling_rate=24000).save_pretrained(speech)
print(sum(p.numel() for p in model.parameters()))
"""


def build_tiny_qwen3tts(env: EngineEnv, directory: Path, variant: str, size: str = "0b6") -> Path:
    """Write a ``variant`` (``base``, ``custom_voice``, ``voice_design``) model of ``size``
    (``0b6``, ``1b7``) into ``directory``; returns it."""
    run_in_env(env, _SCRIPT, str(directory), variant, size)
    return directory
