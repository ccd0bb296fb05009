"""Safe extraction of untrusted zip archives: zip-slip, links, bombs, damage, clean-up."""

import errno
import io
import stat
import struct
import zipfile
from pathlib import Path

import pytest

from tests.factories import class_images, image_bytes, zip_bytes
from tltools.data import archive
from tltools.data.archive import extract_zip
from tltools.errors import TLToolsError
from tltools.limits import Limits


def _files_under(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*") if path.is_file() or path.is_symlink()}


def _zip_with_infos(entries: list[tuple[zipfile.ZipInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
        for info, data in entries:
            out.writestr(info, data)
    return buffer.getvalue()


def _set_header_field(data: bytes, local_offset: int, central_offset: int, value: int) -> bytes:
    """Overwrite a 2-byte field in every local and central header (e.g. flags, compression method)."""
    raw = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", local_offset), (b"PK\x01\x02", central_offset)):
        start = 0
        while (found := raw.find(signature, start)) >= 0:
            raw[found + offset : found + offset + 2] = struct.pack("<H", value)
            start = found + 4
    return bytes(raw)


@pytest.fixture
def target(tmp_path) -> Path:
    """Where archives are extracted, three levels below tmp_path so '../' entries have room to escape."""
    return tmp_path / "home" / "datasets" / "upload"


@pytest.mark.parametrize("source_kind", ["path", "bytes", "file object"])
def test_zip_is_extracted_from_a_path_bytes_or_file_object(tmp_path, target, source_kind):
    data = zip_bytes(class_images())
    zip_path = tmp_path / "upload.zip"
    zip_path.write_bytes(data)
    source = {"path": zip_path, "bytes": data, "file object": io.BytesIO(data)}[source_kind]

    skipped = extract_zip(source, target)

    assert skipped == []
    assert sorted(p.relative_to(target).as_posix() for p in _files_under(target)) == sorted(class_images())
    assert (target / "dog" / "3.png").read_bytes() == class_images()["dog/3.png"]


@pytest.mark.hostile
@pytest.mark.parametrize(
    "evil_name",
    [
        "../evil.png",
        "../../evil.png",
        "cat/../../../evil.png",
        "..\\..\\evil.png",
        "C:/evil/evil.png",
        "c:\\evil\\evil.png",
    ],
)
def test_zip_slip_entry_is_skipped_and_nothing_lands_outside(tmp_path, target, evil_name):
    files = {**class_images(), evil_name: image_bytes()}

    skipped = extract_zip(zip_bytes(files), target)

    assert [item.path for item in skipped] == [evil_name.replace("\\", "/")]
    assert skipped[0].reason.startswith("unsafe path")
    assert _files_under(tmp_path) == _files_under(target)
    assert len(_files_under(target)) == len(class_images())


@pytest.mark.hostile
def test_absolute_path_entry_is_skipped_and_not_written(tmp_path, target):
    outside = tmp_path / "outside" / "evil.png"
    files = {**class_images(), str(outside): image_bytes()}

    skipped = extract_zip(zip_bytes(files), target)

    assert [item.path for item in skipped] == [str(outside)]
    assert "absolute" in skipped[0].reason
    assert not outside.exists()
    assert _files_under(tmp_path) == _files_under(target)


@pytest.mark.hostile
def test_symlink_entry_is_skipped_and_no_link_is_created(tmp_path, target):
    link = zipfile.ZipInfo("cat/link.png")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    entries = [(zipfile.ZipInfo(name), data) for name, data in class_images().items()]
    data = _zip_with_infos(entries + [(link, b"../../../../etc/passwd")])

    skipped = extract_zip(data, target)

    assert [(item.path, "link" in item.reason) for item in skipped] == [("cat/link.png", True)]
    assert not (target / "cat" / "link.png").exists() and not (target / "cat" / "link.png").is_symlink()
    assert not any(path.is_symlink() for path in target.rglob("*"))


@pytest.mark.hostile
def test_unicode_and_space_names_are_extracted_as_named(target):
    files = {"chats noirs/été 1.png": image_bytes(seed=1), "犬/写真 2.png": image_bytes(seed=2)}

    skipped = extract_zip(zip_bytes(files), target)

    assert skipped == []
    assert (target / "chats noirs" / "été 1.png").read_bytes() == files["chats noirs/été 1.png"]
    assert (target / "犬" / "写真 2.png").read_bytes() == files["犬/写真 2.png"]


@pytest.mark.hostile
def test_duplicate_entry_keeps_the_first_copy_and_reports_the_second(target):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as out, pytest.warns(UserWarning, match="Duplicate name"):
        out.writestr("cat/1.png", b"first")
        out.writestr("cat/1.png", b"second")

    skipped = extract_zip(buffer.getvalue(), target)

    assert (target / "cat" / "1.png").read_bytes() == b"first"
    assert [item.path for item in skipped] == ["cat/1.png"] and "duplicate" in skipped[0].reason


@pytest.mark.hostile
def test_damaged_entry_is_skipped_and_the_others_are_extracted(target):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as out:
        out.writestr("cat/good.png", image_bytes(seed=1))
        out.writestr("cat/bad.png", b"A" * 500)
    raw = bytearray(buffer.getvalue())
    raw[raw.index(b"A" * 500) + 100] = ord("B")  # stored data no longer matches its CRC

    skipped = extract_zip(bytes(raw), target)

    assert [item.path for item in skipped] == ["cat/bad.png"] and "damaged" in skipped[0].reason
    assert not (target / "cat" / "bad.png").exists()
    assert (target / "cat" / "good.png").read_bytes() == image_bytes(seed=1)


@pytest.mark.hostile
@pytest.mark.parametrize(
    ("local_offset", "central_offset", "value", "reason_word"),
    [(6, 8, 0x1, "encrypted"), (8, 10, 99, "unsupported method")],
    ids=["password-protected", "unknown-compression"],
)
def test_entries_python_cannot_read_are_skipped_with_a_reason(target, local_offset, central_offset, value, reason_word):
    data = _set_header_field(zip_bytes(class_images()), local_offset, central_offset, value)

    skipped = extract_zip(data, target)

    assert sorted(item.path for item in skipped) == sorted(class_images())
    assert all(reason_word in item.reason for item in skipped)
    assert _files_under(target) == set()


@pytest.mark.hostile
@pytest.mark.parametrize(
    ("limits", "message"),
    [
        (Limits(max_ratio=50, ratio_min_bytes=64 * 1024), "expands"),
        (Limits(max_total_bytes=100_000), "unpacks to"),
        (Limits(max_entries=3), "entries"),
    ],
    ids=["ratio", "total-size", "entry-count"],
)
def test_zip_bomb_stops_with_a_clear_error_and_leaves_nothing(tmp_path, target, limits, message):
    files = {**class_images(), "cat/padding.bin": b"\0" * 200_000}  # 200 kB that deflates to a few hundred bytes

    with pytest.raises(TLToolsError, match=message) as raised:
        extract_zip(zip_bytes(files), target, limits=limits)

    assert "zip bomb" in str(raised.value) and "\n" not in str(raised.value)
    assert not target.parent.exists()  # refused on its headers, before a folder is made


@pytest.mark.hostile
@pytest.mark.parametrize(("size", "refused"), [(60_000, False), (70_000, True)])
def test_compression_ratio_applies_only_from_ratio_min_bytes(target, size, refused):
    files = {"blank.csv": b"," * size}
    limits = Limits(max_ratio=10, ratio_min_bytes=64 * 1024)

    if refused:
        with pytest.raises(TLToolsError, match="expands"):
            extract_zip(zip_bytes(files), target, limits=limits)
    else:
        assert extract_zip(zip_bytes(files), target, limits=limits) == []
        assert (target / "blank.csv").stat().st_size == size


def test_disk_full_midway_raises_and_leaves_no_staging_folder(monkeypatch, target):
    real_copy = archive._copy_entry
    calls = []

    def copy_then_fill_the_disk(*args, **kwargs):
        calls.append(args[1].filename)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_copy(*args, **kwargs)

    monkeypatch.setattr(archive, "_copy_entry", copy_then_fill_the_disk)

    with pytest.raises(TLToolsError, match="free disk space"):
        extract_zip(zip_bytes(class_images()), target)

    assert len(calls) == 3
    assert list(target.parent.iterdir()) == []


def test_successful_extraction_leaves_only_the_target_folder(target):
    extract_zip(zip_bytes(class_images()), target)

    assert [path.name for path in target.parent.iterdir()] == [target.name]


@pytest.mark.hostile
@pytest.mark.parametrize(
    "source",
    [b"", b"this is not a zip archive", zip_bytes(class_images())[:-30], zip_bytes(class_images())[:200]],
    ids=["empty", "text", "truncated-end", "truncated-start"],
)
def test_unreadable_archive_is_a_one_line_error_and_leaves_nothing(target, source):
    with pytest.raises(TLToolsError, match="not a readable zip archive") as raised:
        extract_zip(source, target)

    assert "\n" not in str(raised.value)
    assert not target.exists()


def test_missing_archive_path_is_reported_by_name(tmp_path, target):
    with pytest.raises(TLToolsError, match="archive not found: .*nowhere.zip"):
        extract_zip(tmp_path / "nowhere.zip", target)


@pytest.mark.hostile
@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("cat/" + "a" * 252 + ".png", "name too long for the file system: 'aaa"),
        ("b" * 256 + "/0.png", "name too long for the file system: 'bbb"),
        ("cat/" + "写" * 84 + ".png", "is 256 bytes, the limit is 255"),
        ("/".join(["d" * 250] * 17) + "/x.png", "path too long for the file system"),
    ],
    ids=["file-name-256-bytes", "folder-name-256-bytes", "85-characters-256-bytes", "path-over-path-max"],
)
def test_name_the_file_system_cannot_hold_is_skipped_before_writing(target, name, reason):
    skipped = extract_zip(zip_bytes({**class_images(), name: image_bytes()}), target)

    assert [item.path for item in skipped] == [name]
    assert reason in skipped[0].reason
    assert len(_files_under(target)) == len(class_images())


def test_name_of_exactly_255_bytes_is_extracted(target):
    name = "cat/" + "a" * 251 + ".png"

    assert extract_zip(zip_bytes({name: image_bytes()}), target) == []
    assert (target / name).is_file()


@pytest.mark.hostile
@pytest.mark.parametrize("order", ["file first", "folder first"])
def test_file_and_folder_of_the_same_name_keep_the_first_and_report_the_second(target, order):
    entries = [("cat/x.png", image_bytes(seed=1)), ("cat/x.png/y.png", image_bytes(seed=2))]
    if order == "folder first":
        entries.reverse()

    skipped = extract_zip(zip_bytes(dict(entries)), target)

    assert [item.path for item in skipped] == [entries[1][0]]
    assert skipped[0].reason.startswith("clashes with another entry")
    first = target / entries[0][0]
    assert first.is_file() and first.read_bytes() == entries[0][1]


def test_a_file_already_at_the_destination_is_never_overwritten(monkeypatch, target):
    # What a case-insensitive file system does with "Cat/a.png" after "cat/a.png": the path exists already.
    monkeypatch.setattr(archive, "_clash_reason", lambda staging, relative: None)
    real_copy = archive._copy_entry

    def copy_twice(archive_file, entry, destination, *args):
        real_copy(archive_file, entry, destination, *args)
        return real_copy(archive_file, entry, destination, *args)  # the second write finds the first one

    monkeypatch.setattr(archive, "_copy_entry", copy_twice)

    skipped = extract_zip(zip_bytes({"cat/a.png": image_bytes(seed=1)}), target)

    assert [item.path for item in skipped] == ["cat/a.png"] and "letter case" in skipped[0].reason
    assert (target / "cat" / "a.png").read_bytes() == image_bytes(seed=1)


def test_a_target_extracted_meanwhile_by_another_process_is_kept(target):
    target.mkdir(parents=True)
    (target / "theirs.png").write_bytes(b"same archive, extracted first")

    assert extract_zip(zip_bytes(class_images()), target) == []

    assert sorted(path.name for path in _files_under(target)) == ["theirs.png"]
    assert [path.name for path in target.parent.iterdir()] == [target.name]
