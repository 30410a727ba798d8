"""`medzoo data prepare omnimedvqa`: the hub's OmniMedVQA.zip unpacked (or an unpacked folder checked in place),
its open-access questions read as the benchmark reads them (bad ones counted by reason) and the QA record counts
compared with the published 127,995 (open and restricted access; foreverbeliever/OmniMedVQA dataset card)."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from medzoo.app.cli.main import main
from medzoo.app.data_prepare import omnimedvqa as prepare_module
from medzoo.core.errors import DataError
from medzoo.core.plugin_system.manager import components


def record(question_id: str, image: str) -> dict:
    return {"dataset": "Src", "question_id": question_id, "question_type": "Anatomy Identification",
            "question": "Which organ is shown?", "gt_answer": "Liver", "image_path": image,
            "modality_type": "CT(Computed Tomography)", "option_A": "Lung", "option_B": "Liver"}


def release(root: Path) -> Path:
    """An OmniMedVQA folder as the release archive holds it: 2 open-access records (one image missing) and one
    restricted-access record (its image is not distributed)."""
    folder = root / "OmniMedVQA"
    (folder / "Images" / "Src").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(folder / "Images" / "Src" / "a.png")
    for access, records in (("Open-access", [record("q1", "Images/Src/a.png"), record("q2", "Images/Src/gone.png")]),
                            ("Restricted-access", [record("r1", "Images/Private/x.png")])):
        (folder / "QA_information" / access).mkdir(parents=True)
        (folder / "QA_information" / access / "Src.json").write_text(json.dumps(records))
    return folder


def zipped(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                handle.write(path, path.relative_to(folder.parent).as_posix())
    return archive


def test_the_hub_archive_is_unpacked_checked_and_compared_with_the_published_size(tmp_path, capsys, monkeypatch):
    from medzoo.app.data_prepare import hub

    published = tmp_path / "hub"
    published.mkdir()
    zipped(release(tmp_path / "made"), published / "OmniMedVQA.zip")
    (published / "README.md").write_text("not wanted")

    def list_files(repo_id):
        assert repo_id == "foreverbeliever/OmniMedVQA"
        return [hub.HubFile(p.name, p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
                for p in sorted(published.iterdir())]

    def fetch(repo_id, file, local_dir):
        target = Path(local_dir) / file.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((published / file.path).read_bytes())
        return target

    monkeypatch.setattr(hub, "list_files", list_files)
    monkeypatch.setattr(hub, "fetch", fetch)
    out = tmp_path / "data"
    main(["data", "prepare", "omnimedvqa", "--output", str(out), "--no-progress"])
    printed = capsys.readouterr().out
    assert "records converted 1, skipped 1 (image not found: 1)" in printed
    assert ("QA items 2 open-access + 1 restricted-access = 3 (the published release has 127,995)" in printed)
    unpacked = out / "omnimedvqa" / "OmniMedVQA"
    assert f"-b omnimedvqa --data {unpacked}`" in printed and not (out / "omnimedvqa" / "README.md").exists()
    report = json.loads((out / "omnimedvqa.prepare.json").read_text())
    assert report["records"] == {"converted": 1, "skipped": {"image not found": 1}}
    items = components().get("benchmark", "omnimedvqa").factory().load(str(unpacked))
    assert [(item.question_id, item.image) for item in items] == [("q1", unpacked / "Images" / "Src" / "a.png")]


def test_an_unpacked_folder_is_checked_in_place(tmp_path, capsys, monkeypatch):
    folder = release(tmp_path / "copy")
    monkeypatch.setattr(prepare_module, "PUBLISHED_QA_ITEMS", 3)  # this release's size, to see the check pass
    out = tmp_path / "data"
    main(["data", "prepare", "omnimedvqa", "--source", str(tmp_path / "copy"), "--output", str(out), "--no-progress"])
    printed = capsys.readouterr().out
    assert "= 3 (as published)" in printed and f"wrote {folder} (checked in place)" in printed
    assert not (out / "omnimedvqa").exists()  # nothing copied


def test_a_source_that_is_not_the_release_is_a_one_line_error(tmp_path):
    stray = tmp_path / "questions.csv"
    stray.write_text("a,b\n")
    with pytest.raises(DataError, match=r"questions.csv: expected OmniMedVQA.zip or the unpacked OmniMedVQA folder"):
        prepare_module.prepare_omnimedvqa([stray], tmp_path / "out", _summary(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as error:
        prepare_module.prepare_omnimedvqa([tmp_path / "empty"], tmp_path / "out", _summary(tmp_path))
    assert "\n" not in str(error.value) and "no QA_information/Open-access folder in" in str(error.value)


def _summary(root: Path):
    from medzoo.app.data_prepare.summary import Summary

    return Summary("omnimedvqa", root)
