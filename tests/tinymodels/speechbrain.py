"""Tiny random-weight SpeechBrain ASR models, in the hub's on-disk layout.

Two layouts, each a directory SpeechBrain's pretrained interfaces load:

- ``seq2seq``: speechbrain/asr-crdnn-rnnlm-librispeech in miniature. A CRDNN encoder, an
  attentional GRU decoder with beam search and an RNN language model scorer
  (``EncoderDecoderASR``); ``hyperparams.yaml``, ``asr.ckpt``, ``lm.ckpt``,
  ``normalizer.ckpt``, ``tokenizer.ckpt``, and a model card saying ``language: en``.
- ``ctc``: a CTC-only model with a greedy ``decoding_function`` (``EncoderASR``, as
  speechbrain/asr-wav2vec2-commonvoice-14-en), with no model card.

The tokenizer is a real SentencePiece model trained here on a few sentences. Writing the
checkpoints needs torch, which the test venv does not have, so this file is also a script
run with an engine environment's interpreter (:func:`write_speechbrain`); importing it
imports nothing of torch or SpeechBrain.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torchenvs import EngineEnv

__all__ = ["CARD", "CTC", "LAYOUTS", "SEQ2SEQ", "write_speechbrain"]

LAYOUTS = ("seq2seq", "ctc")

_SENTENCES = [
    "it was the best of times it was the worst of times",
    "it was the age of wisdom it was the age of foolishness",
    "ever tried ever failed no matter try again fail again fail better",
    "we had everything before us we had nothing before us",
    "the quick brown fox jumps over the lazy dog",
]

_FRONT_END = """\
sample_rate: 16000
n_fft: 400
n_mels: 20
output_neurons: {vocabulary}
blank_index: 0
bos_index: 0
eos_index: 0

normalize: !new:speechbrain.processing.features.InputNormalization
    norm_type: global

compute_features: !new:speechbrain.lobes.features.Fbank
    sample_rate: !ref <sample_rate>
    n_fft: !ref <n_fft>
    n_mels: !ref <n_mels>

enc: !new:speechbrain.lobes.models.CRDNN.CRDNN
    input_shape: [null, null, !ref <n_mels>]
    activation: !name:torch.nn.LeakyReLU
    dropout: 0.0
    cnn_blocks: 1
    cnn_channels: (4,)
    cnn_kernelsize: (3, 3)
    inter_layer_pooling_size: (2,)
    time_pooling: True
    time_pooling_size: 4
    rnn_class: !name:speechbrain.nnet.RNN.LSTM
    rnn_layers: 1
    rnn_neurons: 16
    rnn_bidirectional: True
    dnn_blocks: 1
    dnn_neurons: 16

ctc_lin: !new:speechbrain.nnet.linear.Linear
    input_size: 16
    n_neurons: !ref <output_neurons>

tokenizer: !new:sentencepiece.SentencePieceProcessor
"""

SEQ2SEQ = (
    "# Tiny random-weight model in the layout of speechbrain/asr-crdnn-rnnlm-librispeech\n"
    + _FRONT_END
    + """
emb: !new:speechbrain.nnet.embedding.Embedding
    num_embeddings: !ref <output_neurons>
    embedding_dim: 8

dec: !new:speechbrain.nnet.RNN.AttentionalRNNDecoder
    enc_dim: 16
    input_size: 8
    rnn_type: gru
    attn_type: location
    hidden_size: 16
    attn_dim: 16
    num_layers: 1
    scaling: 1.0
    channels: 4
    kernel_size: 5
    re_init: True
    dropout: 0.0

seq_lin: !new:speechbrain.nnet.linear.Linear
    input_size: 16
    n_neurons: !ref <output_neurons>

lm_model: !new:speechbrain.lobes.models.RNNLM.RNNLM
    output_neurons: !ref <output_neurons>
    embedding_dim: 8
    activation: !name:torch.nn.LeakyReLU
    dropout: 0.0
    rnn_layers: 1
    rnn_neurons: 16
    dnn_blocks: 1
    dnn_neurons: 16
    return_hidden: True  # the scorer carries the LM's state from step to step

asr_model: !new:torch.nn.ModuleList
    - [!ref <enc>, !ref <emb>, !ref <dec>, !ref <ctc_lin>, !ref <seq_lin>]

encoder: !new:speechbrain.nnet.containers.LengthsCapableSequential
    input_shape: [null, null, !ref <n_mels>]
    compute_features: !ref <compute_features>
    normalize: !ref <normalize>
    model: !ref <enc>

rnnlm_scorer: !new:speechbrain.decoders.scorer.RNNLMScorer
    language_model: !ref <lm_model>
    temperature: 1.25

scorer: !new:speechbrain.decoders.scorer.ScorerBuilder
    full_scorers: [!ref <rnnlm_scorer>]
    weights:
        rnnlm: 0.5

# min_decode_ratio keeps the random decoder from ending at once (an empty transcript);
# max_decode_ratio keeps it short (it never says </s> on purpose).
decoder: !new:speechbrain.decoders.S2SRNNBeamSearcher
    embedding: !ref <emb>
    decoder: !ref <dec>
    linear: !ref <seq_lin>
    bos_index: !ref <bos_index>
    eos_index: !ref <eos_index>
    min_decode_ratio: 0.1
    max_decode_ratio: 0.2
    beam_size: 2
    eos_threshold: 1.5
    temperature: 1.25
    scorer: !ref <scorer>

modules:
    encoder: !ref <encoder>
    decoder: !ref <decoder>
    lm_model: !ref <lm_model>

# Some hub repos name their own files by repo id, which SpeechBrain would fetch from the
# hub; Bragi reads them from the model directory instead.
pretrained_path: speechbrain/asr-crdnn-rnnlm-librispeech

pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        normalizer: !ref <normalize>
        asr: !ref <asr_model>
        lm: !ref <lm_model>
        tokenizer: !ref <tokenizer>
    paths:
        lm: !ref <pretrained_path>/lm.ckpt
        tokenizer: !ref <pretrained_path>/tokenizer.ckpt
"""
)

CTC = (
    "# Tiny random-weight CTC-only model, decoded greedily (EncoderASR)\n"
    + _FRONT_END
    + """
log_softmax: !new:speechbrain.nnet.activations.Softmax
    apply_log: True

asr_model: !new:torch.nn.ModuleList
    - [!ref <enc>, !ref <ctc_lin>]

encoder: !new:speechbrain.nnet.containers.LengthsCapableSequential
    input_shape: [null, null, !ref <n_mels>]
    compute_features: !ref <compute_features>
    normalize: !ref <normalize>
    model: !ref <enc>
    ctc_lin: !ref <ctc_lin>
    log_softmax: !ref <log_softmax>

decoding_function: !name:speechbrain.decoders.ctc_greedy_decode
    blank_id: !ref <blank_index>

modules:
    encoder: !ref <encoder>

pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        normalizer: !ref <normalize>
        asr: !ref <asr_model>
        tokenizer: !ref <tokenizer>
"""
)

CARD = """---
language: "en"
tags:
- automatic-speech-recognition
- speechbrain
license: "apache-2.0"
---

# A tiny random-weight test model (it transcribes noise)
"""


def write_speechbrain(env: EngineEnv, directories: Mapping[str, Path]) -> dict[str, Path]:
    """Write a tiny model of each layout (``{"seq2seq": dir, "ctc": dir}``) with ``env``'s
    interpreter, in one run (torch and SpeechBrain take seconds to import)."""
    from torchenvs import run_in_env  # the test side only: this file also runs in the env

    unknown = set(directories) - set(LAYOUTS)
    if unknown:
        raise ValueError(f"unknown layouts {sorted(unknown)}; known: {LAYOUTS}")
    # Without the working directory on the path, so that ``import speechbrain`` can only
    # find the library (never this file, from a shell in tests/tinymodels).
    script = (
        "import runpy, sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; "
        "sys.argv = ['speechbrain-tiny', *sys.argv[1:]]; "
        f"runpy.run_path({str(Path(__file__))!r}, run_name='__main__')"
    )
    pairs = [value for layout, path in directories.items() for value in (str(path), layout)]
    run_in_env(env, script, *pairs)
    return dict(directories)


def _train_tokenizer() -> bytes:
    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(_SENTENCES),
        model_writer=model,
        vocab_size=40,
        model_type="unigram",
        character_coverage=1.0,
        # as SpeechBrain's SentencePiece wrapper trains them: no <s> or </s> pieces, the
        # models take id 0 (<unk>) for blank, <s> and </s>
        unk_id=0,
        bos_id=-1,
        eos_id=-1,
        minloglevel=2,
    )
    return model.getvalue()


def _build(directory: Path, layout: str) -> None:
    import sentencepiece
    import torch
    from hyperpyyaml import load_hyperpyyaml

    torch.manual_seed(0)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer()
    (directory / "tokenizer.ckpt").write_bytes(tokenizer)
    vocabulary = sentencepiece.SentencePieceProcessor(model_proto=tokenizer).vocab_size()
    text = (SEQ2SEQ if layout == "seq2seq" else CTC).format(vocabulary=vocabulary)
    (directory / "hyperparams.yaml").write_text(text, encoding="utf-8")
    hparams = load_hyperpyyaml(text)
    # The global mean and variance the normalizer stores, from a few seconds of noise.
    normalize, features = hparams["normalize"], hparams["compute_features"]
    normalize.train()
    for _ in range(3):
        normalize(features(torch.randn(2, 16_000) * 0.1), torch.ones(2))
    normalize._save(directory / "normalizer.ckpt")
    torch.save(hparams["asr_model"].state_dict(), directory / "asr.ckpt")
    if layout == "seq2seq":
        torch.save(hparams["lm_model"].state_dict(), directory / "lm.ckpt")
        (directory / "README.md").write_text(CARD, encoding="utf-8")


if __name__ == "__main__":  # directory layout [directory layout ...]
    for at in range(1, len(sys.argv) - 1, 2):
        _build(Path(sys.argv[at]), sys.argv[at + 1])
