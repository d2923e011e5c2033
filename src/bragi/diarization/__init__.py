"""Who spoke when: speaker diarization without torch, and speakers in transcripts."""

from bragi.diarization.attribution import DiarizedSegment, SpeakerLabels, attribute_speakers

__all__ = ["DiarizedSegment", "SpeakerLabels", "attribute_speakers"]
