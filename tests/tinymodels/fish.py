"""A tiny OpenAudio S1-mini (Fish Speech) checkpoint with random weights, in the hub's layout.

Written by fish-speech 0.1.0's own classes: ``config.json`` (``"model_type": "dual_ar"``)
and ``model.pth`` from a ``DualARTransformer``, ``tokenizer.tiktoken`` (the 256 single
bytes) and ``special_tokens.json`` from a ``FishTokenizer``, and ``codec.pth`` from the
modded DAC built by hydra from a shrunk copy of fish-speech's own ``modded_dac_vq.yaml``,
kept beside it as ``codec.yaml``, which the backend uses when it is there (a real-size codec
is far too big for a test). 10 MB in all.

A random slow transformer would almost never sample ``<|im_end|>``. Every token embedding
gets a constant in one dimension that nothing else writes, and ``<|im_end|>``'s a larger
one; the embeddings are tied to the output, so its logit stands above the rest at every
step and a sentence ends after some dozens of frames, at a point the seed fixes. The
embeddings, the attention's output and its queries and keys are scaled up (random ones
are faint and look everywhere evenly), so that the prompt (the reference's codes, its
transcript, the text and its emotion markers) steers what is sampled. The four numbers
were found by trying: with seed 2, "Hello there." stops after about 66 frames, and a
different prompt gives different samples. Its speech is noise: tests assert lengths,
rates and differences.

The script runs with the ``torch-tts`` environment's interpreter:
``build_tiny_fish(env, directory)``.
"""

from __future__ import annotations

from pathlib import Path

from torchenvs import EngineEnv, run_in_env

__all__ = ["SAMPLES_PER_FRAME", "build_tiny_fish"]

SAMPLES_PER_FRAME = 2048  # 44.1 kHz / ~21.5 Hz

_SCRIPT = r"""
import base64
import json
import sys
from importlib import resources
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from fish_speech.models.text2semantic.llama import DualARModelArgs, DualARTransformer
from fish_speech.tokenizer import ALL_SPECIAL_TOKENS, IM_END_TOKEN, FishTokenizer

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
EMBEDDING_STD, STOP_BIAS, ATTENTION_GAIN, FOCUS = (float(a) for a in sys.argv[2:6])
torch.manual_seed(0)

(out / "tokenizer.tiktoken").write_text(
    "".join(f"{base64.b64encode(bytes([b])).decode()} {b}\n" for b in range(256))
)
tokenizer = FishTokenizer(str(out / "tokenizer.tiktoken"))
(out / "special_tokens.json").write_text(json.dumps(tokenizer.all_special_tokens_with_ids))

args = DualARModelArgs(
    vocab_size=256 + len(ALL_SPECIAL_TOKENS), n_layer=1, n_head=2, dim=32,
    intermediate_size=64, n_local_heads=1, head_dim=16, max_seq_len=4096, codebook_size=1024,
    num_codebooks=4, n_fast_layer=1, fast_dim=32, fast_n_head=2, fast_n_local_heads=1,
    fast_head_dim=16, fast_intermediate_size=64, use_gradient_checkpointing=False,
)
args.save(str(out / "config.json"))
model = DualARTransformer(args, tokenizer=tokenizer)

# Stop after about a dozen frames (see the module docstring).
CONSTANT = 31
with torch.no_grad():
    embeddings = model.embeddings.weight
    embeddings.normal_(std=EMBEDDING_STD)  # so that the prompt steers the samples
    embeddings[:, CONSTANT] = 3.0
    embeddings[tokenizer.get_token_id(IM_END_TOKEN), CONSTANT] = 3.0 + STOP_BIAS
    model.codebook_embeddings.weight.normal_(std=EMBEDDING_STD)
    model.codebook_embeddings.weight[:, CONSTANT] = 0.0
    for layer in model.layers:
        layer.attention.wo.weight.mul_(ATTENTION_GAIN)  # the prompt as loud as the token
        queries_and_keys = args.n_head * args.head_dim + args.n_local_heads * args.head_dim
        layer.attention.wqkv.weight[:queries_and_keys].mul_(FOCUS)  # look near, not evenly
        layer.attention.wo.weight[CONSTANT, :] = 0.0
        layer.feed_forward.w2.weight[CONSTANT, :] = 0.0
torch.save(model.state_dict(), out / "model.pth")

# The codec: fish-speech's own modded DAC config, shrunk (every transformer at least 64
# wide: the DAC blocks take n_head = dim // 64).
codec = OmegaConf.load(str(resources.files("fish_speech") / "configs" / "modded_dac_vq.yaml"))
codec.encoder_dim = 4
codec.decoder_dim = 128
codec.encoder_transformer_layers = [0, 0, 0, 1]
codec.decoder_transformer_layers = [1, 0, 0, 0]
# Causal masks are block_size squared: 16384 would be 270 MB (enough here: 23 s at 86 Hz).
codec.transformer_general_config.block_size = 2048
quantizer = codec.quantizer
quantizer.input_dim = 64
quantizer.n_codebooks = 3
quantizer.semantic_codebook_size = 1024
for module in (quantizer.post_module, quantizer.pre_module):
    module.input_dim = 64
    module.config.update(
        dim=64, n_layer=1, n_head=1, head_dim=64, intermediate_size=128, block_size=512
    )
OmegaConf.save(codec, out / "codec.yaml")
dac = instantiate(codec)
with torch.no_grad():  # random layers shrink the signal: scale the last one to be heard
    level = dac.decode(torch.randint(0, 1024, (1, 4, 20)), torch.tensor([20]))[0].pow(2).mean()
    last = [m for m in dac.decoder.modules() if isinstance(m, torch.nn.Conv1d)][-1]
    last.weight.mul_(0.1 / level.sqrt())
torch.save(dac.state_dict(), out / "codec.pth")
print(sum(p.numel() for p in model.parameters()))
"""


def build_tiny_fish(env: EngineEnv, directory: Path) -> Path:
    """Write the model (and its ``codec.yaml``) into ``directory``; returns it."""
    run_in_env(env, _SCRIPT, str(directory), "0.3", "0.6", "25", "30")
    return directory
