"""The helpers every backend shares (``bragi.backends.support``)."""

from __future__ import annotations

import numpy as np

from bragi.backends.protocol import BackendOptions
from bragi.backends.support import cut_at_quietest, installed, options_as
from bragi.backends.vosk import VoskOptions


def test_long_speech_is_cut_at_the_quietest_frame_of_each_windows_second_half() -> None:
    loudness = np.ones(25)
    loudness[[3, 7, 16]] = 0.0  # 3 is in a first half: never a cut
    assert cut_at_quietest(0, 25, loudness, 10) == [(0, 7), (7, 16), (16, 25)]
    assert cut_at_quietest(4, 9, loudness, 10) == [(4, 9)]  # short enough: whole
    flat = np.ones(30)  # no pause at all: cut at the window's middle, never past it
    pieces = cut_at_quietest(0, 30, flat, 10)
    assert all(end - start <= 10 for start, end in pieces)
    assert pieces[0][0] == 0 and pieces[-1][1] == 30


def test_options_are_taken_as_they_are_or_validated_once() -> None:
    own = VoskOptions()
    assert options_as(VoskOptions, own) is own  # the manager's: used as they are
    assert isinstance(options_as(VoskOptions, BackendOptions()), VoskOptions)


def test_installed_checks_without_importing() -> None:
    assert installed("numpy", "json")
    assert not installed("numpy", "no_such_module_xyz")
