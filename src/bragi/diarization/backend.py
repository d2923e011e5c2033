"""The ``sherpa-diarization`` backend: a diarization model (kind ``diarization``) made of a
pyannote segmentation model and a speaker-embedding model, both ONNX in sherpa-onnx's
format; the segmentation runs in ONNX Runtime, the embeddings in sherpa-onnx's extractor.

The segmentation model is the model's own directory; the embedding model is named by the
``embedding`` option (a catalog name, hub repo or path, fetched like any model), or lies
beside the segmentation model in the same directory.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ConfigDict, Field

from bragi.backends.protocol import BackendOptions, Device, ModelKind
from bragi.backends.support import installed, options_as
from bragi.diarization.engine import Diarizer, DiarizerSettings
from bragi.diarization.onnx_models import (
    SegmentationModel,
    find_embedding,
    find_segmentation,
    has_segmentation,
)
from bragi.errors import ModelUnavailableError

__all__ = ["BACKEND", "DiarizationBackend", "DiarizationOptions"]


class DiarizationOptions(BackendOptions):
    """The ``options:`` of a diarization model in the configuration."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    embedding: str | None = None
    """The speaker-embedding model: a catalog name, hub repo, directory or .onnx file;
    unset: the one beside the segmentation model."""
    threshold: float = Field(default=0.5, gt=0, lt=2)
    """Cosine distance under which two stretches of speech are one speaker (clustering
    and linking across blocks); lower finds more speakers."""
    known_speaker_similarity: float = Field(default=0.4, ge=-1, le=1)
    """Least cosine similarity between a speaker and a known speaker's reference to give
    the speaker that name."""
    window_shift: float = Field(default=0.5, gt=0, le=1)
    """Step between the segmentation model's 10 s windows, as a fraction of the window:
    each second of speech is segmented and embedded 1/window_shift times (sherpa-onnx's
    0.1: ten); 0.5 measured as accurate as 0.25 on the test conversations, at half the cost."""
    min_speech: float = Field(default=0.3, ge=0)
    """Seconds: shorter turns are dropped."""
    min_silence: float = Field(default=0.5, ge=0)
    """Seconds: a speaker's turns closer than this are joined."""
    block_minutes: float = Field(default=10.0, ge=1, le=120)
    """Longer recordings are diarized in blocks of about this length, so memory stays
    bounded; their speakers are linked by voice."""
    threads: int = Field(default=1, ge=1, le=16)
    """Units embedded at once, each by its own single-threaded copy of the embedding model
    (for long recordings on many cores). Each model call has one thread: a second intra-op
    thread doubled the CPU time on 2 cores (ONNX Runtime's threads spin) for no gain."""


class DiarizationBackend:
    """Registered as the ``sherpa-diarization`` entry point."""

    name = "sherpa-diarization"
    kind = ModelKind.DIARIZATION
    extra = "diarization"
    options_model: type[BackendOptions] = DiarizationOptions

    def is_available(self) -> bool:
        return installed("sherpa_onnx", "onnxruntime")

    def detect(self, model_dir: Path) -> bool:
        """A segmentation model, or a speaker-embedding model (which only serves as one's
        ``embedding``: loading it alone says so)."""
        for find in (find_segmentation, find_embedding):
            try:
                find(model_dir)
            except ModelUnavailableError:
                continue
            return True
        return False

    def companions(self, options: BackendOptions) -> dict[str, str]:
        embedding = options_as(DiarizationOptions, options).embedding
        return {"embedding": embedding} if embedding else {}

    def load(self, model_dir: Path, device: Device, options: BackendOptions) -> Diarizer:
        opts = options_as(DiarizationOptions, options)
        import sherpa_onnx

        from bragi.diarization.segmentation import Segmenter

        segmentation = _segmentation(model_dir)
        embedding = find_embedding(Path(opts.embedding) if opts.embedding else model_dir)
        if embedding.sample_rate != segmentation.sample_rate:
            raise ModelUnavailableError(
                f"the embedding model is {embedding.sample_rate} Hz, the segmentation model "
                f"{segmentation.sample_rate} Hz"
            )
        settings = DiarizerSettings(
            sample_rate=segmentation.sample_rate,
            threshold=opts.threshold,
            window_shift=opts.window_shift,
            min_speech=opts.min_speech,
            min_silence=opts.min_silence,
            block_seconds=max(opts.block_minutes * 60, 2 * segmentation.window_seconds),
            known_similarity=opts.known_speaker_similarity,
        )
        workers = opts.threads
        config = sherpa_onnx.SpeakerEmbeddingExtractorConfig(
            model=str(embedding.path), num_threads=1
        )
        try:  # onnxruntime's and sherpa-onnx's own errors for a broken graph
            segmenter = Segmenter(segmentation, 1)
            extractors = [sherpa_onnx.SpeakerEmbeddingExtractor(config) for _ in range(workers)]
        except Exception as exc:
            raise ModelUnavailableError(f"could not load the diarization models: {exc}") from exc
        return Diarizer(settings, segmenter, extractors)


def _segmentation(model_dir: Path) -> SegmentationModel:
    try:
        return find_segmentation(model_dir)
    except ModelUnavailableError as exc:
        try:
            if has_segmentation(model_dir):  # there is one, with bad metadata: say that
                raise
            find_embedding(model_dir)
        except ModelUnavailableError:
            raise exc from None
        raise ModelUnavailableError(
            f"{model_dir} holds a speaker-embedding model, which is not served on its own: "
            "name it in a diarization model's `embedding` option (docs/diarization.md)"
        ) from None


BACKEND = DiarizationBackend()
