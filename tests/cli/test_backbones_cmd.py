"""``python -m tltools backbones [--json]``: the registry as a table or a JSON list."""

import json


from tltools.backbones import list_backbones
from tltools.cli import main


def run_backbones(capsys, *args):
    status = main(["backbones", *args])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return captured.out


def test_table_has_a_row_per_backbone_with_its_facts(capsys):
    lines = run_backbones(capsys).splitlines()

    assert lines[0].split() == ["name", "params", "input", "features", "preprocessing", "top-1", "offline"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert list(rows) == [spec.name for spec in list_backbones()]
    assert rows["efficientnet_lite0"] == ["efficientnet_lite0", "3.4M", "224", "1280", "(x-127)/128", "-", "yes"]
    assert rows["efficientnet_b0"] == ["efficientnet_b0", "4.0M", "224", "1280", "none", "77.1%", "no"]
    assert rows["resnet50"][4] == "caffe" and rows["densenet121"][4] == "torch"


def test_json_lists_every_backbone_with_exact_numbers(capsys):
    entries = json.loads(run_backbones(capsys, "--json"))

    assert [entry["name"] for entry in entries] == [spec.name for spec in list_backbones()]
    assert entries[0] == {
        "name": "efficientnet_lite0",
        "params": 3_413_024,
        "input_size": 224,
        "feature_size": 1280,
        "preprocessing": "(x-127)/128",
        "imagenet_top1": None,
        "offline": True,
    }
    by_name = {entry["name"]: entry for entry in entries}
    assert by_name["inception_v3"]["input_size"] == 299
    assert by_name["convnext_tiny"]["imagenet_top1"] == 81.3
