"""Code outside the package, named in a config: ``"package.module:Name"`` or
``"path/to/file.py:Name"``.

Extension points that take such a reference (see the README, "Extending nvp"):

* ``audio.name``: an audio feature extractor class; its settings come from
  ``audio.options`` and are checked against the class's ``Config`` dataclass;
* ``renderer.network``: the renderer network (network 1) class; its settings from
  ``renderer.options`` likewise.

A file path is imported under a module name derived from the path, once per process, so
that spawned worker processes (parallel preprocessing, DDP ranks) load the same code from
the same config.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nvp.errors import ConfigError


def is_reference(name: str) -> bool:
    """Whether ``name`` names code (``module:Name`` / ``file.py:Name``), not a built-in."""
    return isinstance(name, str) and ":" in name and not name.startswith(":")


def load_object(ref: str, what: str) -> Any:
    """The object ``ref`` names.

    Args:
        ref: ``"package.module:Name"`` (importable) or ``"path/to/file.py:Name"``.
        what: the config key, for messages (``audio.name``).

    Raises:
        ConfigError: a malformed reference, a module or file that cannot be imported (with
            the reason), or a missing name.
    """
    module_ref, _, attr = ref.rpartition(":")
    if not module_ref or not attr:
        raise ConfigError(f"{what}={ref!r}: expected 'module:Name' or 'file.py:Name'")
    if module_ref.endswith(".py"):
        module = _load_file(Path(module_ref).expanduser().resolve(), ref, what)
    else:
        try:
            module = importlib.import_module(module_ref)
        except Exception as exc:
            raise ConfigError(
                f"{what}={ref!r}: cannot import {module_ref} ({type(exc).__name__}: {exc})"
            ) from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"{what}={ref!r}: {module_ref} defines no {attr!r}") from None


def _load_file(path: Path, ref: str, what: str) -> Any:
    """Import a Python file once per process, under a name derived from its path."""
    if not path.is_file():
        raise ConfigError(f"{what}={ref!r}: no such file {path}")
    name = "nvp_plugin_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it executes
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ConfigError(
            f"{what}={ref!r}: cannot import {path} ({type(exc).__name__}: {exc})"
        ) from exc
    return module


def plugin_options(cls: type, options: Mapping[str, Any] | None, what: str) -> Any:
    """``options`` checked against ``cls.Config`` (a dataclass) as an instance of it, the way
    every nvp config is checked (unknown keys and wrong types are errors naming the key); a
    class without ``Config`` takes no options."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    options = dict(options or {})
    schema = getattr(cls, "Config", None)
    if schema is None:
        if options:
            raise ConfigError(f"{what}: {cls.__name__} takes no options, got {sorted(options)}")
        return None
    base = OmegaConf.structured(schema)
    OmegaConf.set_struct(base, True)
    try:
        return OmegaConf.to_object(OmegaConf.merge(base, options))
    except (OmegaConfBaseException, ValueError) as exc:
        raise ConfigError(f"{what}: invalid options for {cls.__name__}: {exc}") from exc


def source_hash(obj: Any) -> str | None:
    """sha256 prefix of the file that defines ``obj`` (None where there is none): part of
    the signatures that decide when results made with plugin code are stale."""
    import inspect

    from nvp.io.files import file_sha256

    try:
        return file_sha256(inspect.getfile(obj))
    except (TypeError, OSError):
        return None
