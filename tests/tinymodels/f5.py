"""A tiny F5-TTS checkpoint and Vocos vocoder with random weights, in the hub's real layouts.

Written by f5-tts's and vocos's own classes: a ``DiT`` inside a ``CFM`` saved as EMA weights
(``ema_model.*``) in ``F5TTS_v1_Base/model_1250000.safetensors`` beside its ``vocab.txt``,
as ``SWivid/F5-TTS`` has it, and Vocos's ``config.yaml`` and ``pytorch_model.bin`` as
``charactr/vocos-mel-24khz`` has them (a separate directory: the second repo). The DiT is
64 wide and 2 deep (222k parameters); F5's length comes from its duration estimate
(reference length times text length), so output lengths are exact and the seed makes the
samples repeatable. Its speech is noise: tests assert lengths and differences.

The script runs with the ``torch-tts`` environment's interpreter:
``build_tiny_f5(env, model_dir, vocos_dir)``.
"""

from __future__ import annotations

from pathlib import Path

from torchenvs import EngineEnv, run_in_env

__all__ = ["CHECKPOINT", "build_tiny_f5"]

CHECKPOINT = "F5TTS_v1_Base/model_1250000.safetensors"

_SCRIPT = r"""
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from vocos import Vocos

from f5_tts.model import CFM, DiT
from f5_tts.model.utils import get_tokenizer

model_dir, vocos_dir, checkpoint = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
target = model_dir / checkpoint
target.parent.mkdir(parents=True, exist_ok=True)
vocos_dir.mkdir(parents=True, exist_ok=True)
torch.manual_seed(0)

# One symbol a line, the space first (index 0 is also the unknown symbol); a few pinyin.
symbols = [" "] + list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'-")
symbols += ["ni3", "hao3", "shi4", "jie4"]
(target.parent / "vocab.txt").write_text("\n".join(symbols) + "\n", encoding="utf-8")
vocab, size = get_tokenizer(str(target.parent / "vocab.txt"), "custom")

transformer = DiT(
    dim=64, depth=2, heads=1, ff_mult=2, text_dim=32, text_mask_padding=True, conv_layers=1,
    pe_attn_head=None, text_num_embeds=size, mel_dim=100,
)
mel = dict(
    n_fft=1024, hop_length=256, win_length=1024, n_mel_channels=100, target_sample_rate=24000,
    mel_spec_type="vocos",
)
model = CFM(transformer=transformer, mel_spec_kwargs=mel, vocab_char_map=vocab)
weights = {"ema_model." + key: value.contiguous() for key, value in model.state_dict().items()}
save_file(weights, str(target))

(vocos_dir / "config.yaml").write_text('''
feature_extractor:
  class_path: vocos.feature_extractors.MelSpectrogramFeatures
  init_args: {sample_rate: 24000, n_fft: 1024, hop_length: 256, n_mels: 100, padding: center}
backbone:
  class_path: vocos.models.VocosBackbone
  init_args: {input_channels: 100, dim: 32, intermediate_dim: 64, num_layers: 1}
head:
  class_path: vocos.heads.ISTFTHead
  init_args: {dim: 32, n_fft: 1024, hop_length: 256, padding: center}
''')
vocos = Vocos.from_hparams(str(vocos_dir / "config.yaml"))
torch.save(vocos.state_dict(), vocos_dir / "pytorch_model.bin")
print(sum(p.numel() for p in transformer.parameters()))
"""


def build_tiny_f5(env: EngineEnv, model_dir: Path, vocos_dir: Path) -> Path:
    """Write the checkpoint (:data:`CHECKPOINT` under ``model_dir``) and the vocoder
    (``vocos_dir``); returns ``model_dir``."""
    run_in_env(env, _SCRIPT, str(model_dir), str(vocos_dir), CHECKPOINT)
    return model_dir
