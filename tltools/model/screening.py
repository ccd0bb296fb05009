"""Checks of a model file before Keras deserializes any of it.

A model file is a recipe Keras follows: every layer, initializer, loss and
optimizer in it is named by class and rebuilt. A hostile file can name a
``Lambda`` layer (its Python bytecode runs when the model is rebuilt), a
custom class, or anything outside Keras. Keras 3.15's safe mode refuses
lambdas in both formats; tltools does not rely on it alone (the legacy ``.h5``
loader has had safe-mode bypasses in earlier Keras versions) and reads the
configuration itself first: ``config.json`` of a ``.keras`` zip (which may hold
only Keras' own members and ``tltools.json``), the ``model_config`` and
``training_config`` attributes of an ``.h5`` file. A file passes when every
object it names is

- one of Keras' own classes: a class with ``from_config``, defined in Keras,
  found in an already imported Keras module (nothing is imported on behalf of
  a file), or for the legacy format's bare class names in Keras' layer, model,
  initializer, regularizer, constraint, loss, metric and optimizer namespaces;
- not one of the layers that carry or load code (:data:`REFUSED_LAYERS`);
- not registered under a custom name (``"package>Name"``);
- for a function reference, a function of Keras' own built-in modules.

tltools' own models consist of Keras' built-in layers only (its
preprocessing is ``Rescaling``/``Normalization``), so every model it saves
passes. The size limit and the HDF5 containment checks of
:mod:`tltools.untrusted` run here too. Every refusal is a one-line
:class:`TLToolsError` naming the file and the offending object.
"""

import json
import sys
import zipfile
import zlib
from pathlib import Path

import h5py
import keras

from tltools.errors import TLToolsError
from tltools.limits import Limits
from tltools.untrusted import check_model_size, check_self_contained, first_line, short

CONFIG_MEMBER = "config.json"
WEIGHTS_MEMBER = "model.weights.h5"
# Members Keras writes into a .keras file, plus tltools' own (see tltools.model.io).
ARCHIVE_MEMBERS = frozenset({CONFIG_MEMBER, "metadata.json", WEIGHTS_MEMBER, "model.weights.npz", "tltools.json"})
ASSETS_FOLDER = "assets/"
# A model's configuration is a few MB at most (ConvNeXt-XLarge: 2 MB).
MAX_CONFIG_BYTES = 64 * 1024**2

# Keras layers that carry or load code, with what they do.
REFUSED_LAYERS = {
    "Lambda": "carries Python code",
    "TorchModuleWrapper": "carries a pickled PyTorch module, which runs code when loaded",
    "TFSMLayer": "loads a TensorFlow SavedModel (graph code) from a path on this computer",
    "JaxLayer": "wraps Python functions",
    "FlaxLayer": "wraps Python functions",
}
# Class names Keras' (de)serialization uses for values, not for objects it looks up.
VALUE_MARKERS = frozenset({
    "__keras_tensor__", "__tensor__", "__numpy__", "__bytes__", "__ellipsis__", "__slice__", "__tuple__",
    "TensorShape",
})
# Where Keras' legacy (.h5) loader looks up a bare class name.
_BARE_NAME_NAMESPACES = (
    "keras.src.layers", "keras.src.models", "keras.layers", "keras.models", "keras", "keras.initializers",
    "keras.regularizers", "keras.constraints", "keras.losses", "keras.metrics", "keras.optimizers",
    "keras.optimizers.schedules", "keras.dtype_policies",
)
# Where Keras looks up a function saved by name (serialization_lib.BUILTIN_MODULES).
_FUNCTION_NAMESPACES = (
    "activations", "constraints", "initializers", "losses", "metrics", "optimizers", "regularizers",
)
_REBUILD = "Rebuild the model from Keras' built-in layers and save it again, or load it with Keras in your own code"


def screen_model_file(path: Path, limits: Limits) -> None:
    """Check a ``.keras`` or ``.h5`` model file before Keras reads it.

    Args:
        path: An existing file ending in ``.keras`` or ``.h5``.
        limits: ``max_model_bytes`` bounds the file and a ``.keras`` file's unpacked members.

    Raises:
        TLToolsError: The file is too large, is not a Keras model file (not
            a zip / HDF5 file, no configuration, damaged), holds members or
            HDF5 links that do not belong in a model, or its configuration
            names anything but Keras' own classes (see the module docstring).
    """
    check_model_size(str(path), path.stat().st_size, limits)
    if path.suffix.lower() == ".keras":
        configs = _read_archive(path, limits)
    else:
        configs = _read_hdf5(path)
    for where, raw in configs:
        check_model_config(_parse(raw, f"{path} ({where})"), str(path))


def check_model_config(config: dict, source: str) -> None:
    """Refuse a model configuration that names anything but Keras' own classes.

    Args:
        config: A decoded ``config.json`` (``.keras``) or ``model_config`` /
            ``training_config`` attribute (``.h5``).
        source: How to name the file in messages.

    Raises:
        TLToolsError: For the first object that is a refused layer, a Python
            lambda, a custom or unknown class, a class from outside Keras, or
            a function that is not one of Keras' own.
    """
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "class_name" in node:
                _check_object(node, source)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _check_object(node: dict, source: str) -> None:
    """Refuse one serialized object (a dict with ``class_name``) unless it is Keras' own."""
    class_name, module, registered = node["class_name"], node.get("module"), node.get("registered_name")
    if not isinstance(class_name, str) or not isinstance(module, (str, type(None))):
        raise TLToolsError(f"{source} has a damaged model configuration (class {short(class_name)} in module "
                           f"{short(module)}); save the model again with Keras")
    if class_name in REFUSED_LAYERS:
        config = node.get("config")
        name = config.get("name") if isinstance(config, dict) else None
        raise TLToolsError(
            f"{source} contains a {class_name} layer{f' ({short(name)})' if name else ''}, which "
            f"{REFUSED_LAYERS[class_name]}; tltools does not run code from model files. {_REBUILD}"
        )
    if class_name == "__lambda__":
        raise TLToolsError(f"{source} contains Python bytecode (a serialized lambda); tltools does not run code "
                           f"from model files. {_REBUILD}")
    if class_name in VALUE_MARKERS:
        return
    if class_name == "function":
        _check_function(node.get("config"), module, source)
        return
    if registered not in (None, class_name):
        raise TLToolsError(f"{source} uses the custom object {short(registered)} (class {short(class_name)}), "
                           f"not one of Keras' own classes; tltools loads only built-in Keras layers. {_REBUILD}")
    if module is not None and module != "keras" and not module.startswith("keras."):
        raise TLToolsError(f"{source} names {short(class_name)} from module {short(module)}, outside Keras; "
                           f"tltools loads only built-in Keras layers (a custom layer, or a tampered file). {_REBUILD}")
    if _keras_class(class_name, module) is None:
        where = f" in {short(module)}" if module else ""
        raise TLToolsError(f"{source} uses {short(class_name)}{where}, which is not one of Keras' own classes "
                           f"(a custom layer, or a newer Keras); tltools loads only built-in Keras layers. {_REBUILD}")


def _keras_class(class_name: str, module: str | None):
    """Return Keras' own class of that name in ``module`` (or, without a module, Keras' namespaces), else None.

    Only modules already imported are searched: nothing is imported on behalf of a file.
    """
    spaces = [module] if module is not None else _BARE_NAME_NAMESPACES
    for space in spaces:
        loaded = sys.modules.get(space)
        candidate = vars(loaded).get(class_name) if loaded is not None else None
        if (isinstance(candidate, type) and callable(getattr(candidate, "from_config", None))
                and candidate.__module__.startswith("keras.")):
            return candidate
    return None


def _check_function(name, module: str | None, source: str) -> None:
    """Refuse a function reference unless it names a function of Keras' built-in modules."""
    own_module = module in (None, "builtins", "keras") or module.startswith("keras.")
    known = isinstance(name, str) and ">" not in name and any(
        callable(getattr(getattr(keras, space), name, None)) for space in _FUNCTION_NAMESPACES)
    if not (own_module and known):
        raise TLToolsError(f"{source} refers to the function {short(name)} (module {short(module)}), not one of "
                           f"Keras' own functions; tltools does not run code from model files. {_REBUILD}")


def _read_archive(path: Path, limits: Limits) -> list[tuple[str, bytes]]:
    """Check a ``.keras`` zip's members and return ``[("config.json", raw bytes)]``."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            names = {info.filename for info in infos}
            if CONFIG_MEMBER not in names:
                raise TLToolsError(f"{path} is a zip file but not a Keras model (no {CONFIG_MEMBER})")
            unexpected = sorted(name for name in names
                                if name not in ARCHIVE_MEMBERS and not name.startswith(ASSETS_FOLDER))
            if unexpected:
                more = f" and {len(unexpected) - 1} more" if len(unexpected) > 1 else ""
                raise TLToolsError(
                    f"{path} holds {short(unexpected[0])}{more}, which does not belong in a Keras model file (only {', '.join(sorted(ARCHIVE_MEMBERS))} and "
                    f"{ASSETS_FOLDER}); save the model again with Keras"
                )
            check_model_size(f"{path} unpacked", sum(info.file_size for info in infos), limits)
            config = archive.getinfo(CONFIG_MEMBER)
            if config.file_size > MAX_CONFIG_BYTES:
                raise TLToolsError(f"{path}: {CONFIG_MEMBER} is {config.file_size:,} bytes, more than a model's "
                                   f"configuration can be ({MAX_CONFIG_BYTES:,}); the file is damaged or tampered")
            raw = archive.read(CONFIG_MEMBER)
            if WEIGHTS_MEMBER in names:
                with archive.open(WEIGHTS_MEMBER) as member, h5py.File(member, "r") as weights:
                    check_self_contained(weights, f"{path} ({WEIGHTS_MEMBER})")
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, RuntimeError, NotImplementedError, ValueError) as error:
        raise TLToolsError(f"{path} is not a Keras model file, or is damaged ({type(error).__name__}: "
                           f"{first_line(error, 160)}); save the model again") from None
    return [(CONFIG_MEMBER, raw)]


def _read_hdf5(path: Path) -> list[tuple[str, object]]:
    """Check an ``.h5`` model file and return its ``model_config`` (and ``training_config``) attributes."""
    try:
        with h5py.File(path, "r") as file:
            if "model_config" not in file.attrs:
                raise TLToolsError(f"{path} is an HDF5 file but not a Keras model (no model_config)")
            configs = [(name, file.attrs[name]) for name in ("model_config", "training_config") if name in file.attrs]
            check_self_contained(file, str(path))
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as error:
        raise TLToolsError(f"{path} is not a Keras model file, or is damaged ({type(error).__name__}: "
                           f"{first_line(error, 160)}); save the model again") from None
    return configs


def _parse(raw, where: str) -> dict:
    """Decode JSON text (``str`` or UTF-8 ``bytes``) holding an object, or refuse it."""
    try:
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8")
        if not isinstance(raw, str):
            raise TypeError(f"{type(raw).__name__} instead of text")
        config = json.loads(raw)
    except (UnicodeDecodeError, TypeError, ValueError, RecursionError) as error:
        raise TLToolsError(f"{where} is not JSON text ({first_line(error, 120)}); the file is damaged or tampered") \
            from None
    if not isinstance(config, dict):
        raise TLToolsError(f"{where} is not a JSON object; the file is damaged or tampered")
    return config
