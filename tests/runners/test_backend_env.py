"""``bragi backend install|list|remove`` for real, with a fake engine plugin whose
requirements are tiny (``six==1.16.0``), then a worker started from that environment.

The plugin is a real project (pyproject, module, ``bragi.backends`` entry point): pip
installs it into the environment, as a third-party torch engine would be; the server
sees it through a dist-info directory put on its path for the test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bragi.backends.protocol import TranscribeOptions
from bragi.cli.main import main
from bragi.errors import BackendUnavailableError
from bragi.runners import EngineEnvs, RunnerConfig, create_engine
from bragi.runners.envs import MANIFEST_NAME, bragi_requirement, torch_index_for
from fakes import make_model_dir
from runnerkit import SPEECH, process_exists

PLUGIN = '''
"""A fake engine plugin whose library (six) exists only in its own environment."""

import sys
from pathlib import Path

from bragi.backends.protocol import BackendOptions, ModelKind, Segment, SttCapabilities
from bragi.backends.protocol import TranscriptionInfo


class SixEngine:
    capabilities = SttCapabilities(languages=frozenset({"en"}))

    def __init__(self, version):
        self.version = version

    def transcribe(self, audio, options):
        text = f" six {self.version} from {sys.prefix}"
        return iter([Segment(0, 0.0, audio.duration, text)]), TranscriptionInfo("en", 1.0)

    def close(self):
        pass


class SixBackend:
    name = "fake-six"
    kind = ModelKind.STT
    extra = "fake-six"
    options_model = BackendOptions
    requirements = ("six==1.16.0", PLUGIN_DIR)

    def is_available(self):
        return True

    def detect(self, model_dir):
        return (Path(model_dir) / "fake-six.json").is_file()

    def load(self, model_dir, device, options):
        import six  # the engine library, imported only in load()

        return SixEngine(six.__version__)


BACKEND = SixBackend()


class PairEngine(SixEngine):
    def transcribe(self, audio, options):
        import importlib.util

        import randomname  # installed without its dependencies: fire is missing

        fire = importlib.util.find_spec("fire") is not None
        text = f" {randomname.__name__} without fire: {not fire}, from {sys.prefix}"
        return iter([Segment(0, 0.0, audio.duration, text)]), TranscriptionInfo("en", 1.0)


class PairBackend(SixBackend):
    """Two backends whose pins agree, sharing one environment."""

    environment = "fake-pair"
    no_deps = ("randomname==0.2.1",)

    def __init__(self, name):
        self.name = self.extra = name

    def load(self, model_dir, device, options):
        return PairEngine("-")


SEVEN = PairBackend("fake-seven")
EIGHT = PairBackend("fake-eight")
'''

PYPROJECT = """
[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "bragi-fakeplugin"
version = "0.1.0"

[project.entry-points."bragi.backends"]
fake-six = "bragi_fakeplugin:BACKEND"
fake-seven = "bragi_fakeplugin:SEVEN"
fake-eight = "bragi_fakeplugin:EIGHT"

[tool.setuptools]
py-modules = ["bragi_fakeplugin"]
"""
METADATA = "Metadata-Version: 2.1\nName: bragi-fakeplugin\nVersion: 0.1.0\n"
ENTRY_POINTS = (
    "[bragi.backends]\nfake-six = bragi_fakeplugin:BACKEND\n"
    "fake-seven = bragi_fakeplugin:SEVEN\nfake-eight = bragi_fakeplugin:EIGHT\n"
)


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """The plugin as a project (for pip) and as a module with entry point (for the server)."""
    project = tmp_path / "plugin"
    project.mkdir()
    source = PLUGIN.replace("PLUGIN_DIR", repr(str(project)))
    (project / "bragi_fakeplugin.py").write_text(source)
    (project / "pyproject.toml").write_text(PYPROJECT)
    site = tmp_path / "site"
    info = site / "bragi_fakeplugin-0.1.0.dist-info"
    info.mkdir(parents=True)
    (site / "bragi_fakeplugin.py").write_text(source)
    (info / "METADATA").write_text(METADATA)
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(site))
    import bragi_fakeplugin  # type: ignore[import-not-found]

    yield bragi_fakeplugin.BACKEND
    del sys.modules["bragi_fakeplugin"]


def test_install_list_run_and_remove_an_engine_environment(
    tmp_path: Path, plugin: object, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    envs = EngineEnvs(data / "envs")
    common = ["--data-dir", str(data), "--device", "cpu"]

    assert main(["backend", "install", "fake-six", *common]) == 0
    out, err = capsys.readouterr()
    assert "installed fake-six" in out and "Successfully installed" in err  # pip's own output
    manifest = json.loads((envs.path("fake-six") / MANIFEST_NAME).read_text())
    assert manifest["device"] == "cpu" and manifest["packages"]["six"] == "1.16.0"
    assert manifest["packages"]["bragi"] == "0.1.0" and manifest["size_bytes"] > 1_000_000
    assert manifest["bragi_source"] == bragi_requirement()

    assert main(["backend", "list", *common]) == 0
    listing = capsys.readouterr().out.splitlines()
    row = next(line for line in listing if line.startswith("fake-six"))
    assert " cpu " in row and " MB " in row and "six 1.16.0" in row and "bragi 0.1.0" in row

    model_dir = make_model_dir(tmp_path / "models", "fake-six")
    options = plugin.options_model()  # type: ignore[attr-defined]
    config = RunnerConfig(label="six", envs_dir=envs.root)
    engine = create_engine(plugin, model_dir, "cpu", options, config)  # type: ignore[arg-type]
    try:
        segments, _ = engine.transcribe(SPEECH, TranscribeOptions())  # type: ignore[union-attr]
        env_prefix = str(envs.path("fake-six"))
        assert [s.text for s in segments] == [f" six 1.16.0 from {env_prefix}"]
        assert engine.ping()["python"] == str(envs.python("fake-six"))  # type: ignore[union-attr]
        pid = engine.pid  # type: ignore[union-attr]
        # Neither replaced nor removed under a running worker.
        assert envs.in_use("fake-six") is True
        for command in (["install", "fake-six"], ["remove", "fake-six"]):
            assert main(["backend", *command, *common]) == 1
            assert "in use by a running worker" in capsys.readouterr().err
        assert envs.manifest("fake-six") is not None
    finally:
        engine.close()
    assert not process_exists(pid) and envs.in_use("fake-six") is False

    # A reinstall that fails leaves the working environment as it was, and nothing else.
    before = envs.manifest("fake-six")
    assert main(["backend", "install", "fake-six", *common, "--python", "/no/python3"]) == 1
    assert "failed while creating the venv" in capsys.readouterr().err
    assert before is not None and envs.manifest("fake-six") == before
    assert [p.name for p in envs.root.iterdir()] == ["fake-six"]
    six = [str(envs.python("fake-six")), "-c", "import six; print(six.__version__)"]
    assert subprocess.run(six, capture_output=True, text=True).stdout == "1.16.0\n"

    assert main(["backend", "remove", "fake-six", *common]) == 0
    assert "removed the fake-six environment" in capsys.readouterr().out
    assert not envs.path("fake-six").exists() and envs.installed() == []
    with pytest.raises(BackendUnavailableError, match="bragi backend install fake-six"):
        create_engine(plugin, model_dir, "cpu", options, config)  # type: ignore[arg-type]


def test_backends_whose_pins_agree_share_one_environment_with_packages_without_deps(
    tmp_path: Path, plugin: object, capsys: pytest.CaptureFixture[str]
) -> None:
    """``fake-seven`` and ``fake-eight`` share ``fake-pair``; its ``no_deps`` package is
    installed in a step of its own, without its declared dependency (fire)."""
    import bragi_fakeplugin

    data = tmp_path / "data"
    envs = EngineEnvs(data / "envs")
    common = ["--data-dir", str(data), "--device", "cpu"]
    assert main(["backend", "install", "fake-seven", *common]) == 0
    out, err = capsys.readouterr()
    assert "installed fake-pair" in out and "shared by fake-eight, fake-seven" in out
    assert "pip install --no-input --no-compile --no-deps randomname==0.2.1" in err
    manifest = envs.manifest("fake-pair")
    assert manifest is not None and manifest.no_deps == ["randomname==0.2.1"]
    assert "randomname" in manifest.packages and "fire" not in manifest.packages
    assert [name for name, _ in envs.installed()] == ["fake-pair"]  # one environment

    assert main(["backend", "list", *common]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "fake-pair" in line)
    assert "six 1.16.0" in row and "randomname 0.2.1" in row

    model_dir = make_model_dir(tmp_path / "models", "fake-six")
    config = RunnerConfig(label="eight", envs_dir=envs.root)
    options = bragi_fakeplugin.EIGHT.options_model()
    engine = create_engine(bragi_fakeplugin.EIGHT, model_dir, "cpu", options, config)
    try:
        segments, _ = engine.transcribe(SPEECH, TranscribeOptions())  # type: ignore[union-attr]
        prefix = envs.path("fake-pair")
        assert [s.text for s in segments] == [f" randomname without fire: True, from {prefix}"]
    finally:
        engine.close()
    assert main(["backend", "remove", "fake-eight", *common]) == 0  # a backend's name works
    assert "removed the fake-pair environment" in capsys.readouterr().out
    assert envs.installed() == []


def test_an_installation_whose_source_is_gone_is_copied_into_the_environment(
    tmp_path: Path, plugin: object, capsys: pytest.CaptureFixture[str]
) -> None:
    """In a container image Bragi was installed from a build directory that is not in
    the image; ``--bragi copy`` (the default then) copies the installed package."""
    data = tmp_path / "data"
    envs = EngineEnvs(data / "envs")
    common = ["--data-dir", str(data), "--device", "cpu", "--bragi", "copy"]
    assert main(["backend", "install", "fake-six", *common]) == 0
    assert "copying Bragi 0.1.0" in capsys.readouterr().err
    probe = (
        "import bragi, importlib.metadata as m; print(bragi.__file__); "
        "print(sorted(e.name for e in m.entry_points(group='bragi.backends')))"
    )
    where, names = subprocess.run(
        [str(envs.python("fake-six")), "-c", probe], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert Path(where).is_relative_to(envs.path("fake-six"))
    assert "faster-whisper" in names and "xtts" in names
    model_dir = make_model_dir(tmp_path / "models", "fake-six")
    config = RunnerConfig(label="six", envs_dir=envs.root)
    options = plugin.options_model()  # type: ignore[attr-defined]
    engine = create_engine(plugin, model_dir, "cpu", options, config)  # type: ignore[arg-type]
    try:
        segments, _ = engine.transcribe(SPEECH, TranscribeOptions())  # type: ignore[union-attr]
        assert [s.text for s in segments] == [f" six 1.16.0 from {envs.path('fake-six')}"]
    finally:
        engine.close()


def test_torch_comes_from_the_devices_index_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BRAGI_TORCH_INDEX", raising=False)
    assert torch_index_for("cpu") == "https://download.pytorch.org/whl/cpu"
    assert torch_index_for("cuda") is None  # PyPI's Linux torch wheels are CUDA builds
    assert torch_index_for("cpu", "pypi") is None
    monkeypatch.setenv("BRAGI_TORCH_INDEX", "https://mirror.example/torch")
    assert torch_index_for("cpu") == "https://mirror.example/torch"


def test_an_engine_in_the_server_needs_no_environment(tmp_path: Path) -> None:
    assert main(["backend", "install", "faster-whisper", "--data-dir", str(tmp_path)]) == 2
    assert main(["backend", "remove", "nothing", "--data-dir", str(tmp_path)]) == 1


def test_bragi_installs_into_an_environment_from_where_this_one_came_from() -> None:
    requirement = bragi_requirement()
    repo = Path(__file__).parents[2]
    assert requirement in (["-e", str(repo)], [str(repo)]) or requirement[0].startswith("bragi")


def test_an_incomplete_environment_is_listed_and_not_used(tmp_path: Path) -> None:
    envs = EngineEnvs(tmp_path / "envs")
    (envs.path("half") / "bin").mkdir(parents=True)
    assert envs.installed() == [("half", None)]
    with pytest.raises(BackendUnavailableError, match="bragi backend install half"):
        envs.require("half")
    assert envs.remove("half") == 0 and envs.installed() == []
