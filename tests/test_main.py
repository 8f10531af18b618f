"""The executable's start-up (graphspec/__main__.py): what it defers, and that deferring changes nothing else.

Each probe runs in a fresh interpreter: this test process imported importlib.metadata long ago.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "specs" / "seed000_multimodal.yaml"


def _fresh_python(code: str, *, path: Path | None = None, env: dict | None = None) -> list[str]:
    environment = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"} if env is None else env
    if path is not None:
        environment["PYTHONPATH"] = os.pathsep.join([str(path), environment.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env=environment)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_a_fresh_check_never_imports_package_metadata():
    """Pydantic's plugin loader takes entry_points from importlib.metadata at its top; with plugins off the
    executable's check never needs it (~9 ms of a fresh check). The loader is still Pydantic's own module."""
    seen = _fresh_python(f"""
        import atexit, sys
        atexit.register(lambda: print(
            'importlib.metadata' in sys.modules, 'email' in sys.modules,
            sys.modules['pydantic.plugin._loader'].__file__.endswith('_loader.py'),
            list(sys.modules['pydantic.plugin._loader'].get_plugins())))
        sys.argv = ['graphspec', 'check', '-q', {str(SPEC)!r}]
        from graphspec.__main__ import main
        main()
    """)
    assert seen[-4:] == ["False", "False", "True", "[]"]


NOT_FOR_A_FLAT_CHECK = (
    "importlib.metadata",  # Pydantic's plugin discovery, switched off
    "graphspec.schema.blocks", "graphspec.expand",  # language 1.1: only for specs that use it
    "graphspec.schema.train",  # only for specs with a train: section
    "graphspec.keras_config", "zipfile",  # only for a spec's saved model (model: nodes)
    "tempfile", "socket",  # only for writing
    "tensorflow", "keras", "jax",
)


def test_a_fresh_check_of_a_flat_spec_imports_only_what_it_uses():
    """Every module a fresh check imports is time spent before its one line of output: these are for other
    specs and commands. (The spec has no op: node either, so the ops catalogue is not read.)"""
    seen = _fresh_python(f"""
        import atexit, sys
        atexit.register(lambda: print(*[name for name in {NOT_FOR_A_FLAT_CHECK!r} if name in sys.modules],
                                      sys.modules['graphspec.catalogue'].keras_ops.cache_info().currsize, 'END'))
        sys.argv = ['graphspec', 'check', '-q', {str(SPEC)!r}]
        from graphspec.__main__ import main
        main()
    """)
    assert seen[seen.index("ok") + 1:] == ["0", "END"]


def _fake_plugin(folder: Path) -> None:
    """An installed distribution with a Pydantic plugin that records every validator built."""
    (folder / "fake_pydantic_plugin.py").write_text(textwrap.dedent("""
        built = []

        class _Plugin:
            def new_schema_validator(self, schema, schema_type, schema_type_path, schema_kind, config, settings):
                built.append(schema_type_path.name)
                return None, None, None

        plugin = _Plugin()
    """), encoding="utf-8")
    dist = folder / "fake_pydantic_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-pydantic-plugin\nVersion: 0.1\n",
                                   encoding="utf-8")
    (dist / "entry_points.txt").write_text("[pydantic]\nfake = fake_pydantic_plugin:plugin\n", encoding="utf-8")


def test_plugin_discovery_is_pydantics_own(tmp_path):
    """With plugins on (the user's PYDANTIC_DISABLE_PLUGINS unset), Pydantic still finds an installed plugin
    through the deferred entry_points, and importlib.metadata is imported only then."""
    _fake_plugin(tmp_path)
    seen = _fresh_python("""
        import sys
        from graphspec.__main__ import import_on_first_use_of_package_metadata
        import_on_first_use_of_package_metadata('pydantic.plugin._loader')
        before = 'importlib.metadata' in sys.modules
        from pydantic import BaseModel

        class Probe(BaseModel):
            x: int

        import fake_pydantic_plugin
        print(before, 'importlib.metadata' in sys.modules, fake_pydantic_plugin.built, Probe(x=1).x)
    """, path=tmp_path)
    assert seen == ["False", "True", "['Probe']", "1"]


def test_a_module_that_wants_more_of_package_metadata_is_imported_as_usual(tmp_path):
    """Another Pydantic might import more than entry_points, or bind the module itself: the first is left
    to the usual import, the second reads the real module when it first uses it."""
    (tmp_path / "wants_more.py").write_text("from importlib.metadata import entry_points, version\n"
                                            "PYDANTIC = version('pydantic')\n", encoding="utf-8")
    (tmp_path / "binds_module.py").write_text("import importlib.metadata as metadata\n\n"
                                              "def pydantic_version():\n"
                                              "    return metadata.version('pydantic')\n", encoding="utf-8")
    seen = _fresh_python("""
        import sys
        from graphspec.__main__ import import_on_first_use_of_package_metadata
        import_on_first_use_of_package_metadata('wants_more')
        print('wants_more' in sys.modules, 'importlib.metadata' in sys.modules)
        import_on_first_use_of_package_metadata('binds_module')
        print('binds_module' in sys.modules, 'importlib.metadata' in sys.modules)
        import binds_module, wants_more
        import pydantic
        print(binds_module.pydantic_version() == wants_more.PYDANTIC == pydantic.VERSION)
        import importlib.metadata
        print(type(sys.modules['importlib.metadata']).__name__, importlib.metadata.version('pydantic') == pydantic.VERSION)
    """, path=tmp_path)
    assert seen == ["False", "False", "True", "False", "True", "module", "True"]


def test_a_module_that_uses_package_metadata_while_imported_is_imported_as_usual(tmp_path):
    """Review findings: a module calling entry_points at import recursed into the stand-in, and one reading
    another attribute at import raised AttributeError out of the executable. Both now import as usual;
    a package that fails to import is left to fail where it is imported as usual."""
    (tmp_path / "calls_at_import.py").write_text("from importlib.metadata import entry_points\n"
                                                  "FOUND = len(entry_points(group='console_scripts')) >= 0\n",
                                                  encoding="utf-8")
    (tmp_path / "reads_at_import.py").write_text("import importlib.metadata as metadata\n"
                                                 "PYDANTIC = metadata.version('pydantic')\n", encoding="utf-8")
    (tmp_path / "imports_it").mkdir()
    (tmp_path / "imports_it" / "__init__.py").write_text("import importlib.metadata as metadata\n", encoding="utf-8")
    (tmp_path / "imports_it" / "inner.py").write_text("from importlib.metadata import entry_points\n",
                                                      encoding="utf-8")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "__init__.py").write_text("raise RuntimeError('broken package')\n", encoding="utf-8")
    (tmp_path / "broken" / "inner.py").write_text("", encoding="utf-8")
    seen = _fresh_python("""
        import sys
        from graphspec.__main__ import import_on_first_use_of_package_metadata
        import_on_first_use_of_package_metadata('calls_at_import')
        import calls_at_import
        print(calls_at_import.FOUND, type(sys.modules['importlib.metadata']).__name__)
        del sys.modules['importlib.metadata']
        import_on_first_use_of_package_metadata('reads_at_import')
        print('reads_at_import' in sys.modules, 'importlib.metadata' in sys.modules)
        import reads_at_import, pydantic
        print(reads_at_import.PYDANTIC == pydantic.VERSION)
        del sys.modules['importlib.metadata']
        import_on_first_use_of_package_metadata('imports_it.inner')  # its package imports the real module
        import imports_it.inner, importlib.metadata
        print(sys.modules['importlib.metadata'] is imports_it.metadata is importlib.metadata)
        del sys.modules['importlib.metadata']
        import_on_first_use_of_package_metadata('broken.inner')
        print('broken' in sys.modules, 'importlib.metadata' in sys.modules)
        try:
            import broken.inner
        except RuntimeError as error:
            print(error.args[0].replace(' ', '_'))
    """, path=tmp_path)
    assert seen == ["True", "module", "False", "False", "True", "True", "False", "False", "broken_package"]


def test_nothing_is_deferred_once_package_metadata_is_imported():
    seen = _fresh_python("""
        import sys, importlib.metadata
        real = sys.modules['importlib.metadata']
        from graphspec.__main__ import import_on_first_use_of_package_metadata
        import_on_first_use_of_package_metadata('pydantic.plugin._loader')
        from pydantic.plugin import _loader
        print(sys.modules['importlib.metadata'] is real, _loader.entry_points is real.entry_points)
    """)
    assert seen == ["True", "True"]
