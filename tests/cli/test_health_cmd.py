"""``python -m tltools health DATA``: the JSON shape, --apply/--out, and one-line errors with exit status 2."""

import json

import pytest

from tests.health.data import write_health_set
from tltools.cli import main


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("health-cli") / "shapes"
    return root, write_health_set(root, per_class=10)


@pytest.mark.slow
def test_json_report_has_each_list_most_suspicious_first(shapes, capsys):
    root, planted = shapes
    assert main(["health", str(root), "--image-size", "96", "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert {"label_issues", "duplicates", "outliers", "confused_pairs"} <= set(report)
    first = report["label_issues"][0]
    assert set(first) >= {"path", "given", "suggested", "score"}
    assert (first["path"], first["suggested"]) == planted["label_error"]
    scores = [item["score"] for item in report["label_issues"]]
    assert scores == sorted(scores)
    group = report["duplicates"][0]
    assert set(group) >= {"paths", "kind", "splits", "labels"} and set(group["paths"]) == planted["duplicate"]
    assert group["kind"] in ("exact", "near")
    assert all(set(item) >= {"path", "score"} for item in report["outliers"])
    assert main(["health", str(root), "--image-size", "96"]) == 0
    text = capsys.readouterr().out
    assert "Likely label errors: 1" in text and planted["label_error"][0] in text and "Duplicates: 1 group" in text


def test_apply_writes_a_version_and_leaves_the_original(shapes, tmp_path, capsys):
    root, planted = shapes
    wrong, suggested = planted["label_error"]
    csv = tmp_path / "changes.csv"
    csv.write_text(f"path,old_label,new_label,action,reason\n{wrong},squares,{suggested},relabel,fix\n")
    before = (root / wrong).read_bytes()
    assert main(["health", str(root), "--apply", str(csv), "--out", str(tmp_path / "v"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["relabelled"] == 1 and summary["version"] == str(tmp_path / "v")
    assert (tmp_path / "v" / "changes.csv").read_text() == csv.read_text()
    assert (root / wrong).read_bytes() == before


@pytest.mark.parametrize("args, message", [
    (["{missing}"], "does not exist"),
    (["{root}", "--apply", "{csv}"], "--apply and --out go together"),
    (["{root}", "--apply", "{bad}", "--out", "{out}"], "action 'rename'"),
    (["{root}", "--backbone", "nonsense"], "nonsense"),
])
def test_unusable_input_is_exit_2_and_one_error_line(shapes, tmp_path, capsys, args, message):
    root, _ = shapes
    (tmp_path / "c.csv").write_text("path,old_label,new_label,action,reason\n")
    (tmp_path / "bad.csv").write_text("path,old_label,new_label,action,reason\nx.png,a,,rename,\n")
    values = {"missing": tmp_path / "nope", "root": root, "csv": tmp_path / "c.csv", "bad": tmp_path / "bad.csv",
              "out": tmp_path / "out"}
    status = main(["health", *(arg.format(**values) for arg in args)])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: ") and err.count("\n") == 1 and message in err
