"""Compressor settings as JSON, VST3 ``.vstpreset`` and VST2 ``.fxp`` presets, with readers.

Both preset formats describe a plugin with the reference compressor's five
parameters (threshold, ratio, attack, release, make-up), each normalised to
[0, 1] over :data:`EXPORT_RANGES`: linearly for the dB parameters, on a
logarithmic scale for the ratio and the times.

VST3 preset (Steinberg VST 3 SDK, ``public.sdk/source/vst/vstpresetfile.h``),
little-endian:

    offset 0   'VST3'                          4 bytes
           4   version (1)                     int32
           8   class ID, ASCII                 32 bytes
          40   offset of the chunk list        int64
          48   component state                 8 bytes per parameter (see below)
           L   'List', entry count             4 bytes, int32
               per entry: chunk ID ('Comp'), offset, size   4 bytes, int64, int64

The component state is what this plugin's processor would store: the
parameter count (int32) followed by the normalised values as float64, in
:data:`~hessframe_audio.compressor.PARAMETER_NAMES` order.

VST2 program (``.fxp``, Steinberg VST 2 SDK ``vstfxstore.h``), big-endian:

    'CcnK', byte size of the rest (int32), 'FxCk', format version (1),
    plugin ID (4 ASCII bytes), plugin version (int32), parameter count
    (int32), program name (28 bytes, NUL-padded), normalised values (float32).

No vendor's plugin has exactly these parameters and ranges, so the files
carry this package's own class ID and plugin ID unless others are given.
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hessframe.errors import InvalidArgumentError
from hessframe_audio.compressor import PARAMETER_NAMES, PARAMETER_UNITS, CompressorSettings

FORMATS = ("json", "vstpreset", "fxp")

#: Range and scale of each parameter in the presets.
EXPORT_RANGES: dict[str, tuple[float, float, str]] = {
    "threshold_db": (-80.0, 0.0, "linear"),
    "ratio": (1.0, 50.0, "log"),
    "attack_ms": (0.05, 500.0, "log"),
    "release_ms": (1.0, 5000.0, "log"),
    "makeup_db": (-24.0, 24.0, "linear"),
}

#: 32-character ASCII class ID of hessframe's compressor (the version-5 UUID, namespace DNS, of
#: the name "hessframe-audio compressor", written as upper-case hex).
DEFAULT_CLASS_ID = "025E0F12B99A5BADB642AB3BC6BB2D73"

#: Four-character VST2 plugin ID of hessframe's compressor.
DEFAULT_PLUGIN_ID = "HfCp"

VST3_HEADER_SIZE = 48
VST3_VERSION = 1
FXP_VERSION = 1
FXP_NAME_SIZE = 28
JSON_FORMAT = "hessframe-audio-compressor"


def normalise(settings: CompressorSettings) -> list[float]:
    """Return the parameters normalised to [0, 1] over :data:`EXPORT_RANGES`.

    Raises:
        InvalidArgumentError: A value lies outside its export range.
    """
    values = []
    for name in PARAMETER_NAMES:
        low, high, scale = EXPORT_RANGES[name]
        value = getattr(settings, name)
        if not low <= value <= high:
            raise InvalidArgumentError(
                f"{name} = {value:.6g} {PARAMETER_UNITS[name]} lies outside the preset's range "
                f"[{low}, {high}]; a VST preset cannot store it"
            )
        if scale == "log":
            values.append((math.log(value) - math.log(low)) / (math.log(high) - math.log(low)))
        else:
            values.append((value - low) / (high - low))
    return values


def denormalise(values: list[float]) -> CompressorSettings:
    """Return the settings of normalised values (the inverse of :func:`normalise`)."""
    if len(values) != len(PARAMETER_NAMES):
        raise InvalidArgumentError(
            f"a preset must hold {len(PARAMETER_NAMES)} parameters, got {len(values)}"
        )
    physical = {}
    for name, value in zip(PARAMETER_NAMES, values, strict=True):
        if not (math.isfinite(value) and -1e-6 <= value <= 1 + 1e-6):
            raise InvalidArgumentError(
                f"normalised {name} must lie in [0, 1], got {value}; the preset is damaged"
            )
        value = min(max(value, 0.0), 1.0)
        low, high, scale = EXPORT_RANGES[name]
        if scale == "log":
            physical[name] = math.exp(math.log(low) + value * (math.log(high) - math.log(low)))
        else:
            physical[name] = low + value * (high - low)
    return CompressorSettings(**physical)


# ----------------------------------------------------------------------
# JSON


def settings_to_json(settings: CompressorSettings, metadata: dict[str, Any] | None = None) -> str:
    """Return the settings as JSON text: each value with its unit, plus optional metadata."""
    document = {
        "format": JSON_FORMAT,
        "version": 1,
        "parameters": {
            name: {"value": value, "unit": PARAMETER_UNITS[name]}
            for name, value in settings.as_dict().items()
        },
    }
    if metadata:
        document["metadata"] = metadata
    return json.dumps(document, indent=2) + "\n"


def settings_from_json(text: str, argument: str = "json") -> CompressorSettings:
    """Parse settings from :func:`settings_to_json` text or ``match --json`` output."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidArgumentError(f"{argument}: not valid JSON ({error})") from error
    if not isinstance(document, dict):
        raise InvalidArgumentError(f"{argument}: expected a JSON object of parameters")
    parameters = document.get("parameters", document.get("settings", document))
    if not isinstance(parameters, dict):
        raise InvalidArgumentError(f"{argument}: 'parameters' must be an object")
    values = {}
    for name in PARAMETER_NAMES:
        if name not in parameters:
            raise InvalidArgumentError(
                f"{argument}: parameter {name!r} is missing; expected {', '.join(PARAMETER_NAMES)}"
            )
        entry = parameters[name]
        value = entry.get("value") if isinstance(entry, dict) else entry
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidArgumentError(f"{argument}: parameter {name!r} must be a number")
        values[name] = float(value)
    return CompressorSettings.from_mapping(values)


# ----------------------------------------------------------------------
# VST3 .vstpreset


def settings_to_vstpreset(settings: CompressorSettings, class_id: str = DEFAULT_CLASS_ID) -> bytes:
    """Return the bytes of a VST3 preset with one 'Comp' chunk (layout in the module docstring)."""
    _check_class_id(class_id)
    values = normalise(settings)
    state = struct.pack(f"<i{len(values)}d", len(values), *values)
    list_offset = VST3_HEADER_SIZE + len(state)
    header = b"VST3" + struct.pack("<i", VST3_VERSION) + class_id.encode("ascii")
    header += struct.pack("<q", list_offset)
    chunk_list = b"List" + struct.pack("<i", 1) + b"Comp"
    chunk_list += struct.pack("<qq", VST3_HEADER_SIZE, len(state))
    return header + state + chunk_list


def vstpreset_to_settings(data: bytes) -> tuple[CompressorSettings, str]:
    """Read settings and the class ID back from :func:`settings_to_vstpreset` bytes.

    Raises:
        InvalidArgumentError: The bytes are not a VST3 preset of this layout.
    """
    if data[:4] != b"VST3":
        raise InvalidArgumentError("not a VST3 preset: the file does not start with 'VST3'")
    if len(data) < VST3_HEADER_SIZE:
        raise InvalidArgumentError(
            f"VST3 preset is truncated: {len(data)} bytes, shorter than its "
            f"{VST3_HEADER_SIZE}-byte header"
        )
    (version,) = struct.unpack_from("<i", data, 4)
    class_id = data[8:40].decode("ascii", errors="replace")
    (list_offset,) = struct.unpack_from("<q", data, 40)
    if (
        not VST3_HEADER_SIZE <= list_offset <= len(data) - 8
        or data[list_offset : list_offset + 4] != b"List"
    ):
        raise InvalidArgumentError(
            f"VST3 preset (version {version}) has no 'List' chunk list at offset {list_offset}"
        )
    (count,) = struct.unpack_from("<i", data, list_offset + 4)
    chunks = {}
    for index in range(count):
        position = list_offset + 8 + 20 * index
        if position + 20 > len(data):
            raise InvalidArgumentError("VST3 preset chunk list is truncated")
        chunk_id = data[position : position + 4]
        offset, size = struct.unpack_from("<qq", data, position + 4)
        chunks[chunk_id] = (offset, size)
    if b"Comp" not in chunks:
        raise InvalidArgumentError("VST3 preset has no 'Comp' (component state) chunk")
    offset, size = chunks[b"Comp"]
    if offset < 0 or offset + size > len(data) or size < 4:
        raise InvalidArgumentError("VST3 preset 'Comp' chunk lies outside the file")
    state = data[offset : offset + size]
    (parameter_count,) = struct.unpack_from("<i", state, 0)
    if parameter_count != len(PARAMETER_NAMES) or size != 4 + 8 * parameter_count:
        raise InvalidArgumentError(
            f"VST3 preset component state contains {parameter_count} parameters in {size} bytes; "
            f"this compressor's state is {len(PARAMETER_NAMES)} float64 values"
        )
    values = list(struct.unpack_from(f"<{parameter_count}d", state, 4))
    return denormalise(values), class_id


# ----------------------------------------------------------------------
# VST2 .fxp


def settings_to_fxp(
    settings: CompressorSettings,
    plugin_id: str = DEFAULT_PLUGIN_ID,
    program_name: str = "hessframe match",
    plugin_version: int = 1,
) -> bytes:
    """Return the bytes of a VST2 'FxCk' program (layout in the module docstring)."""
    if len(plugin_id) != 4 or not plugin_id.isascii():
        raise InvalidArgumentError(f"plugin_id must be 4 ASCII characters, got {plugin_id!r}")
    name = program_name.encode("ascii", errors="replace")[: FXP_NAME_SIZE - 1]
    values = normalise(settings)
    body = b"FxCk" + struct.pack(">i", FXP_VERSION) + plugin_id.encode("ascii")
    body += struct.pack(">ii", plugin_version, len(values))
    body += name.ljust(FXP_NAME_SIZE, b"\0")
    body += struct.pack(f">{len(values)}f", *values)
    return b"CcnK" + struct.pack(">i", len(body)) + body


def fxp_to_settings(data: bytes) -> tuple[CompressorSettings, str, str]:
    """Read settings, plugin ID and program name back from :func:`settings_to_fxp` bytes."""
    if data[:4] != b"CcnK":
        raise InvalidArgumentError("not an FXP program: the file does not start with 'CcnK'")
    if len(data) < 56:
        raise InvalidArgumentError(
            f"FXP program is truncated: {len(data)} bytes, shorter than its 56-byte header"
        )
    (byte_size,) = struct.unpack_from(">i", data, 4)
    if byte_size != len(data) - 8:
        raise InvalidArgumentError(
            f"FXP byte-size field is {byte_size}, but {len(data) - 8} bytes follow it; "
            "the file is damaged"
        )
    if data[8:12] != b"FxCk":
        raise InvalidArgumentError(f"FXP program is {data[8:12]!r}, not a parameter program 'FxCk'")
    plugin_id = data[16:20].decode("ascii", errors="replace")
    (count,) = struct.unpack_from(">i", data, 24)
    if len(data) != 56 + 4 * count:
        raise InvalidArgumentError(
            f"FXP program declares {count} parameters but contains {(len(data) - 56) // 4}"
        )
    name = data[28:56].split(b"\0", 1)[0].decode("ascii", errors="replace")
    values = list(struct.unpack_from(f">{count}f", data, 56))
    return denormalise(values), plugin_id, name


# ----------------------------------------------------------------------
# Files


def write_settings(
    path: str | os.PathLike[str],
    settings: CompressorSettings,
    format: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write settings in ``format`` (from the suffix when None) through a temporary file.

    Raises:
        InvalidArgumentError: The format is unknown or a value is outside the
            preset's range; nothing is written then.
    """
    if not isinstance(settings, CompressorSettings):
        raise InvalidArgumentError(
            f"settings must be CompressorSettings, got {type(settings).__name__}"
        )
    path = Path(path)
    format = format or _format_from_suffix(path)
    if not path.parent.is_dir():
        raise InvalidArgumentError(f"path: folder {str(path.parent)!r} does not exist")
    if path.is_dir():
        raise InvalidArgumentError(f"path: {str(path)!r} is a folder; pass a file name")
    if format not in FORMATS:
        raise InvalidArgumentError(f"format must be one of {FORMATS}, got {format!r}")
    writers: dict[str, Callable[[], bytes]] = {
        "json": lambda: settings_to_json(settings, metadata).encode("utf-8"),
        "vstpreset": lambda: settings_to_vstpreset(settings),
        "fxp": lambda: settings_to_fxp(settings),
    }
    data = writers[format]()
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        _make_readable(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def read_settings(path: str | os.PathLike[str], argument: str = "path") -> CompressorSettings:
    """Read settings from a .json, .vstpreset or .fxp file, chosen by its first bytes."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InvalidArgumentError(
            f"{argument}: cannot read {str(path)!r}: {error.strerror or error}"
        ) from error
    if not data:
        raise InvalidArgumentError(f"{argument}: {str(path)!r} is empty")
    if data[:4] == b"VST3":
        return vstpreset_to_settings(data)[0]
    if data[:4] == b"CcnK":
        return fxp_to_settings(data)[0]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidArgumentError(
            f"{argument}: {str(path)!r} is neither JSON, a VST3 preset nor an FXP program"
        ) from error
    return settings_from_json(text, argument)


def _format_from_suffix(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise InvalidArgumentError(
            f"cannot tell the format of {str(path)!r} from its suffix; use .json, .vstpreset "
            "or .fxp, or pass the format"
        )
    return suffix


def _check_class_id(class_id: str) -> None:
    if len(class_id) != 32 or not all(c in "0123456789ABCDEFabcdef" for c in class_id):
        raise InvalidArgumentError(
            f"class_id must be 32 hexadecimal ASCII characters, got {class_id!r}"
        )


def _make_readable(path: str) -> None:
    """Give a temporary file the permissions a plain open() would (0o666 less the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
