"""``python -m tltools inspect DATA [--json]``: the report, and one-line errors with exit status 2."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.factories import class_images, image_bytes, write_tree, zip_bytes
from tltools.cli import main

REPO = Path(__file__).resolve().parents[2]


def _inspect_json(capsys, *args) -> dict:
    status = main(["inspect", *map(str, args), "--json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert captured.err == ""
    return json.loads(captured.out)


def _zip_folder_like_a_zip_tool(folder: Path, archive: Path) -> Path:
    """Zip ``folder`` with its name as the single top folder and directory entries, as `zip -r` does."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for path in sorted(folder.rglob("*")):
            out.write(path, (folder.name / path.relative_to(folder)).as_posix())
        out.write(folder, folder.name)
    return archive


def test_json_report_has_layout_classes_counts_skipped_and_warnings(tmp_path, capsys):
    files = {**class_images(("cat", "dog"), per_class=6), **class_images(("owl",), per_class=2)}
    files["cat/notes.txt"] = "not an image"
    archive = tmp_path / "pets.zip"
    archive.write_bytes(zip_bytes(files))

    report = _inspect_json(capsys, archive)

    assert report["layout"] == "folder-per-class"
    assert report["classes"] == {"cat": 6, "dog": 6, "owl": 2}
    assert report["num_images"] == 14
    assert report["skipped"] == [{"path": "cat/notes.txt", "reason": "not an image file (.txt)"}]
    assert any("imbalanced" in warning for warning in report["warnings"])


def test_split_options_are_applied(tmp_path, capsys):
    write_tree(tmp_path, class_images(per_class=10))

    report = _inspect_json(capsys, tmp_path, "--val-split", "0.3", "--test-split", "0.2", "--seed", "7")

    assert report["split_settings"] == {"val_fraction": 0.3, "test_fraction": 0.2, "seed": 7}
    assert report["splits"] == {
        "train": {"cat": 5, "dog": 5}, "val": {"cat": 3, "dog": 3}, "test": {"cat": 2, "dog": 2}
    }


def test_text_report_shows_layout_class_table_skipped_files_and_warnings(tmp_path, capsys):
    files = {**class_images(("chat noir", "dog"), per_class=9), **class_images(("owl",), per_class=3)}
    files["dog/broken.png"] = b"\x89PNG broken"
    write_tree(tmp_path, files)

    status = main(["inspect", str(tmp_path)])

    out = capsys.readouterr().out
    assert status == 0
    assert "Layout:  folder-per-class" in out
    assert "Images:  21 in 3 classes" in out
    assert any(line.split() == ["chat", "noir", "9", "7", "2"] for line in out.splitlines())
    assert "Skipped 1 file(s):" in out and "dog/broken.png:" in out
    assert "Warnings:" in out and "imbalanced" in out


def _write_one_class(tmp_path: Path) -> list[str]:
    write_tree(tmp_path / "data", class_images(("cat",)))
    return ["inspect", str(tmp_path / "data")]


def _write_not_a_zip(tmp_path: Path) -> list[str]:
    (tmp_path / "photo.zip").write_bytes(image_bytes())
    return ["inspect", str(tmp_path / "photo.zip")]


def _write_bad_fraction(tmp_path: Path) -> list[str]:
    write_tree(tmp_path / "data", class_images())
    return ["inspect", str(tmp_path / "data"), "--val-split", "1.5"]


def _write_csv_without_labels(tmp_path: Path) -> list[str]:
    write_tree(tmp_path / "data", {"0.png": image_bytes(), "1.png": image_bytes(seed=1), "l.csv": "f\n0.png\n1.png\n"})
    return ["inspect", str(tmp_path / "data")]


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda tmp_path: ["inspect", str(tmp_path / "missing.zip")], "does not exist"),
        (_write_not_a_zip, "not a readable zip archive"),
        (_write_one_class, "only one class"),
        (_write_bad_fraction, "val_fraction=1.5"),
        (_write_csv_without_labels, "no label column"),
    ],
    ids=["missing", "not-a-zip", "one-class", "bad-val-split", "csv-without-labels"],
)
def test_unusable_input_exits_2_with_exactly_one_error_line(tmp_path, capsys, make_args, message):
    status = main(make_args(tmp_path))

    captured = capsys.readouterr()
    assert status == 2
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and captured.err.endswith("\n")
    assert lines[0].startswith("error: ") and message in lines[0]


@pytest.mark.slow
def test_entry_point_reports_flowers12_as_pre_split_with_12_classes_and_960_images(flowers12):
    result = subprocess.run(
        [sys.executable, "-m", "tltools", "inspect", str(flowers12), "--json"],
        cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, timeout=300, check=False,
    )

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["layout"] == "pre-split"
    assert report["num_classes"] == 12 and len(report["classes"]) == 12
    assert report["num_images"] == 960 and set(report["classes"].values()) == {80}
    assert report["skipped"] == []
    assert report["given_splits"] == ["train", "test"]
    assert report["documentation"] == ["SOURCE.txt"]


@pytest.mark.slow
def test_zip_of_flowers12_gives_the_same_report_as_the_folder(flowers12, tmp_path, capsys):
    archive = _zip_folder_like_a_zip_tool(flowers12, tmp_path / "flowers12.zip")

    from_folder = _inspect_json(capsys, flowers12)
    from_zip = _inspect_json(capsys, archive)

    assert from_zip["layout"] == from_folder["layout"] == "pre-split"
    for key in ("classes", "num_images", "splits", "given_splits", "skipped", "image_size", "warnings"):
        assert from_zip[key] == from_folder[key], key
    assert from_zip["num_images"] == 960 and from_zip["skipped"] == []
    assert from_zip["documentation"] == ["flowers12/SOURCE.txt"]
