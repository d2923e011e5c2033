"""A tiny XTTS-v2 checkpoint with random weights, in the hub's real layout.

``config.json`` (``"model": "xtts"``), ``model.pth`` (``{"model": state_dict}``), a
``vocab.json`` made with ``tokenizers`` (characters plus XTTS's special and language
tokens) and ``speakers_xtts.pth`` with two built-in speakers, all written by coqui-tts
itself. The GPT is one small layer that never emits its stop token, so every sentence is
exactly nine audio tokens (about 0.4 s) and takes well under a second on a CPU.
Its speech is noise: tests assert shapes, not sound.

The script runs with the ``xtts`` environment's interpreter (the tests' has no torch):
``build_tiny_xtts(env, directory)``.
"""

from __future__ import annotations

from pathlib import Path

from torchenvs import EngineEnv, run_in_env

__all__ = ["LANGUAGES", "SPEAKERS", "build_tiny_xtts"]

SPEAKERS = ("Ana Florence", "Claribel Dervla")
LANGUAGES = ("en", "de", "fr", "es")

_SCRIPT = r"""
import sys
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from TTS.tts.configs.xtts_config import XttsConfig
from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer
from TTS.tts.models.xtts import Xtts

out = Path(sys.argv[1])
speakers = sys.argv[2].split("|")
languages = sys.argv[3].split("|")
out.mkdir(parents=True, exist_ok=True)

special = ["[STOP]", "[UNK]", "[SPACE]", "[START]"] + [f"[{code}]" for code in languages]
letters = list("abcdefghijklmnopqrstuvwxyzäöüßéèàç0123456789'.,!?-")
vocab = {token: i for i, token in enumerate(special + letters)}
tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="[UNK]"))
tokenizer.add_special_tokens(special)
tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
tokenizer.save(str(out / "vocab.json"))

config = XttsConfig()
args = config.model_args
args.gpt_layers, args.gpt_n_model_channels, args.gpt_n_heads = 1, 32, 2
args.decoder_input_dim = 32  # the GPT's latents feed the HiFi-GAN decoder
args.gpt_num_audio_tokens, args.gpt_start_audio_token, args.gpt_stop_audio_token = 34, 32, 33
args.gpt_max_audio_tokens = 12  # random weights never say stop: keep sentences short
args.gpt_use_perceiver_resampler = True  # as XTTS-v2
config.languages = languages
config.save_json(str(out / "config.json"))

torch.manual_seed(0)
model = Xtts(config)
model.tokenizer = VoiceBpeTokenizer(vocab_file=str(out / "vocab.json"))
model.init_models()
with torch.no_grad():  # never stop early: every sentence is exactly the maximum length
    model.gpt.mel_head.weight[args.gpt_stop_audio_token].zero_()
    model.gpt.mel_head.bias[args.gpt_stop_audio_token] = -1e4
torch.save({"model": model.state_dict()}, out / "model.pth")

model.eval()
latents = {}
for seed, name in enumerate(speakers):
    noise = (torch.rand(1, 22050 * 2, generator=torch.Generator().manual_seed(seed)) - 0.5) / 5
    with torch.inference_mode():
        latent = model.get_gpt_cond_latents(noise, 22050)
        embedding = model.get_speaker_embedding(noise, 22050)
    latents[name] = {"gpt_cond_latent": latent.clone(), "speaker_embedding": embedding.clone()}
torch.save(latents, out / "speakers_xtts.pth")
print(sum(p.numel() for p in model.parameters()))
"""


def build_tiny_xtts(env: EngineEnv, directory: Path) -> Path:
    """Write the model into ``directory``; returns it."""
    run_in_env(env, _SCRIPT, str(directory), "|".join(SPEAKERS), "|".join(LANGUAGES))
    return directory
