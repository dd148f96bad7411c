"""Presets: round trips and the byte layouts of .vstpreset and .fxp, field by field."""

from __future__ import annotations

import json
import struct

import pytest
from hessframe_audio.compressor import CompressorSettings
from hessframe_audio.export import (
    DEFAULT_CLASS_ID,
    DEFAULT_PLUGIN_ID,
    denormalise,
    fxp_to_settings,
    normalise,
    read_settings,
    settings_to_fxp,
    settings_to_vstpreset,
    vstpreset_to_settings,
    write_settings,
)

from hessframe.errors import InvalidArgumentError

SETTINGS = CompressorSettings(-23.5, 4.2, 3.3, 140.0, 5.5)


def assert_same_settings(actual, expected, rel):
    for name, value in expected.as_dict().items():
        assert getattr(actual, name) == pytest.approx(value, rel=rel, abs=rel), name


@pytest.mark.parametrize(("suffix", "rel"), [("json", 1e-15), ("vstpreset", 1e-12), ("fxp", 1e-5)])
def test_preset_written_and_read_back_gives_same_parameters(tmp_path, suffix, rel):
    path = write_settings(tmp_path / f"preset.{suffix}", SETTINGS)
    assert_same_settings(read_settings(path), SETTINGS, rel)


def test_normalised_values_follow_ranges():
    values = normalise(CompressorSettings(-40.0, 1.0, 500.0, 1.0, 0.0))
    assert values == pytest.approx([0.5, 0.0, 1.0, 0.0, 0.5])
    assert_same_settings(
        denormalise(values), CompressorSettings(-40.0, 1.0, 500.0, 1.0, 0.0), 1e-12
    )


def test_vstpreset_byte_layout():
    data = settings_to_vstpreset(SETTINGS)
    assert data[0:4] == b"VST3"
    assert struct.unpack_from("<i", data, 4)[0] == 1
    assert data[8:40] == DEFAULT_CLASS_ID.encode("ascii")
    list_offset = struct.unpack_from("<q", data, 40)[0]
    assert list_offset == 48 + 4 + 5 * 8
    # Component state: parameter count, then the normalised values as float64.
    assert struct.unpack_from("<i", data, 48)[0] == 5
    assert list(struct.unpack_from("<5d", data, 52)) == pytest.approx(normalise(SETTINGS), rel=0)
    assert data[list_offset : list_offset + 4] == b"List"
    assert struct.unpack_from("<i", data, list_offset + 4)[0] == 1
    assert data[list_offset + 8 : list_offset + 12] == b"Comp"
    assert struct.unpack_from("<qq", data, list_offset + 12) == (48, 44)
    assert len(data) == list_offset + 8 + 20


def test_fxp_byte_layout():
    data = settings_to_fxp(SETTINGS, program_name="speech")
    assert data[0:4] == b"CcnK"
    assert struct.unpack_from(">i", data, 4)[0] == len(data) - 8
    assert data[8:12] == b"FxCk"
    assert struct.unpack_from(">i", data, 12)[0] == 1
    assert data[16:20] == DEFAULT_PLUGIN_ID.encode("ascii")
    assert struct.unpack_from(">i", data, 20)[0] == 1
    assert struct.unpack_from(">i", data, 24)[0] == 5
    assert data[28:56] == b"speech".ljust(28, b"\0")
    values = struct.unpack_from(">5f", data, 56)
    assert list(values) == pytest.approx(normalise(SETTINGS), rel=1e-7)
    assert len(data) == 56 + 5 * 4


def test_readers_return_identifiers():
    _, class_id = vstpreset_to_settings(settings_to_vstpreset(SETTINGS))
    _, plugin_id, name = fxp_to_settings(settings_to_fxp(SETTINGS, program_name="drums"))
    assert (class_id, plugin_id, name) == (DEFAULT_CLASS_ID, DEFAULT_PLUGIN_ID, "drums")


def test_json_carries_units(tmp_path):
    path = write_settings(tmp_path / "preset.json", SETTINGS)
    document = json.loads(path.read_text())
    assert document["parameters"]["attack_ms"] == {"value": 3.3, "unit": "ms"}
    assert document["parameters"]["ratio"]["unit"] == ":1"


def test_out_of_range_value_writes_nothing(tmp_path):
    loud = CompressorSettings(-23.5, 4.2, 3.3, 140.0, 30.0)
    with pytest.raises(InvalidArgumentError, match="makeup_db = 30 dB lies outside"):
        write_settings(tmp_path / "preset.fxp", loud)
    assert list(tmp_path.iterdir()) == []


def test_truncated_vstpreset_is_rejected():
    data = settings_to_vstpreset(SETTINGS)
    with pytest.raises(InvalidArgumentError, match="no 'List' chunk list"):
        vstpreset_to_settings(data[:60])


def test_fxp_with_wrong_size_is_rejected():
    data = settings_to_fxp(SETTINGS)
    with pytest.raises(InvalidArgumentError, match="byte-size field is"):
        fxp_to_settings(data + b"\0\0\0\0")


def test_unknown_suffix_is_rejected(tmp_path):
    with pytest.raises(InvalidArgumentError, match="cannot tell the format"):
        write_settings(tmp_path / "preset.txt", SETTINGS)


def test_empty_file_is_rejected(tmp_path):
    path = tmp_path / "empty.json"
    path.write_bytes(b"")
    with pytest.raises(InvalidArgumentError, match="is empty"):
        read_settings(path)


def test_json_missing_parameter_is_rejected(tmp_path):
    path = tmp_path / "partial.json"
    path.write_text(json.dumps({"threshold_db": -20}))
    with pytest.raises(InvalidArgumentError, match="parameter 'ratio' is missing"):
        read_settings(path)


def test_write_to_missing_folder_or_folder_names_path(tmp_path):
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        write_settings(tmp_path / "missing" / "preset.json", SETTINGS)
    (tmp_path / "taken.json").mkdir()
    with pytest.raises(InvalidArgumentError, match="is a folder"):
        write_settings(tmp_path / "taken.json", SETTINGS)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["taken.json"]


def test_write_rejects_settings_of_wrong_type(tmp_path):
    with pytest.raises(InvalidArgumentError, match="settings must be CompressorSettings"):
        write_settings(tmp_path / "preset.json", SETTINGS.as_dict())


def test_short_presets_are_reported_as_truncated():
    with pytest.raises(InvalidArgumentError, match="VST3 preset is truncated: 30 bytes"):
        vstpreset_to_settings(settings_to_vstpreset(SETTINGS)[:30])
    with pytest.raises(InvalidArgumentError, match="FXP program is truncated: 50 bytes"):
        fxp_to_settings(settings_to_fxp(SETTINGS)[:50])
