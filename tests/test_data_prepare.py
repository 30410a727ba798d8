"""``medzoo data prepare``: downloads from a local HTTP server (nothing reaches the network), resuming after a
broken connection and after ``kill -9``, reruns that fetch nothing, checksums, failed PMC packages, bad records
counted by reason, local copies converted, and outputs the benchmarks read."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import json
import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image
from support.faults import cli_error
from support.hang_guard import wait_for

from medzoo.app.cli.main import main
from medzoo.app.data_prepare import dataset_sources, hub
from medzoo.app.data_prepare.manifest import Manifest

pyarrow = pytest.importorskip("pyarrow")
parquet = pytest.importorskip("pyarrow.parquet")

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
FAST = ["--no-progress", "--backoff", "0", "--retries", "3", "--timeout", "10"]


# -- no network ---------------------------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every socket to a host other than this machine is refused; the refused hosts are recorded."""
    refused: list[str] = []
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host, *args, **kwargs):
        if str(host) not in LOCAL_HOSTS:
            refused.append(str(host))
            raise socket.gaierror(f"test: no network ({host})")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self, address):
        if isinstance(address, tuple) and str(address[0]) not in LOCAL_HOSTS:
            refused.append(str(address[0]))
            raise OSError(f"test: no network ({address[0]})")
        return real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("MEDZOO_PMC_MIRROR", raising=False)
    return refused


# -- a local file server ------------------------------------------------------------------------------------------

class FileServer(http.server.ThreadingHTTPServer):
    """Serves ``files`` (path -> bytes); switches: Range support, failing the first N requests of a path,
    cutting the first response of a path after K bytes, sending slowly."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.files: dict[str, bytes] = {}
        self.hits: Counter = Counter()
        self.ranges: list[tuple[str, str]] = []
        self.support_range = True
        self.fail_first: Counter = Counter()
        self.cut_after: dict[str, int] = {}
        self.slow: dict[str, float] = {}

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{path}"


class Handler(http.server.BaseHTTPRequestHandler):
    server: FileServer

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        path = self.path.lstrip("/")
        server = self.server
        server.hits[path] += 1
        if server.fail_first[path] > 0:
            server.fail_first[path] -= 1
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = server.files.get(path)
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
        start = 0
        wanted = self.headers.get("Range")
        if wanted and server.support_range and self.headers.get("If-Range", etag) == etag:
            server.ranges.append((path, wanted))
            start = int(re.match(r"bytes=(\d+)-", wanted).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.end_headers()
        cut = server.cut_after.pop(path, None)
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        delay = server.slow.get(path)
        step = 8192 if delay else len(body) or 1
        try:
            for offset in range(0, len(body), step):
                self.wfile.write(body[offset: offset + step])
                if delay:
                    self.wfile.flush()
                    time.sleep(delay)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def server():
    files = FileServer()
    thread = threading.Thread(target=files.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield files
    files.shutdown()
    files.server_close()


# -- data ----------------------------------------------------------------------------------------------------

def png(colour: tuple[int, int, int], size: int = 8, noise: bool = False) -> bytes:
    image = Image.new("RGB", (size, size), colour)
    if noise:
        image = Image.frombytes("RGB", (size, size), os.urandom(size * size * 3))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def parquet_bytes(rows: list[dict]) -> bytes:
    table = pyarrow.table({
        "image": pyarrow.array([{"bytes": r["image"], "path": None} if r["image"] is not None else None
                                for r in rows],
                               type=pyarrow.struct([("bytes", pyarrow.binary()), ("path", pyarrow.string())])),
        "question": [r["question"] for r in rows],
        "answer": [r["answer"] for r in rows],
    })
    buffer = io.BytesIO()
    parquet.write_table(table, buffer)
    return buffer.getvalue()


RED, BLUE = png((255, 0, 0)), png((0, 0, 255))
VQA_TRAIN = [
    {"image": RED, "question": "Is there a mass?", "answer": "yes"},
    {"image": RED, "question": "Which organ is shown?", "answer": "Liver "},  # same image: stored once
    {"image": BLUE, "question": "Is this a CT?", "answer": "no"},
    {"image": None, "question": "No image here?", "answer": "no"},  # skipped: no image bytes
]
VQA_TEST = [
    {"image": BLUE, "question": "Where is the lesion?", "answer": "left lobe"},
    {"image": RED, "question": "Is it normal?", "answer": "no"},
    {"image": b"\x89PNG\r\n\x1a\nnot really", "question": "Broken?", "answer": "yes"},  # skipped: unreadable
]
TRAIN_FILE, TEST_FILE = "train-00000-of-00001.parquet", "test-00000-of-00001.parquet"


def run_cli(capsys, *args: object) -> str:
    main([str(arg) for arg in args])
    return capsys.readouterr().out


def vqa_server(server: FileServer) -> list[str]:
    server.files[f"vqa/{TRAIN_FILE}"] = parquet_bytes(VQA_TRAIN)
    server.files[f"vqa/{TEST_FILE}"] = parquet_bytes(VQA_TEST)
    return ["--source", server.url(f"vqa/{TRAIN_FILE}"), "--source", server.url(f"vqa/{TEST_FILE}")]


def records(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))


# -- VQA data sets ---------------------------------------------------------------------------------------------

def test_vqa_rad_full_run_then_a_rerun_fetches_nothing(server, tmp_path, capsys):
    out = tmp_path / "data"
    sources = vqa_server(server)
    server.fail_first[f"vqa/{TEST_FILE}"] = 2  # transient 503s: retried with backoff
    printed = run_cli(capsys, "data", "prepare", "vqa-rad", *sources, "--output", out, *FAST)
    assert "vqa-rad: files fetched 2, reused 0, failed 0" in printed
    assert "records converted 5, skipped 2 (no image bytes: 1, unreadable image: 1)" in printed
    train, test = records(out / "vqa_rad/train.json"), records(out / "vqa_rad/test.json")
    assert [r["conversations"][1]["value"] for r in train] == ["yes", "Liver ", "no"]  # answers as published
    assert train[0]["answer_type"] == "CLOSED" and train[1]["answer_type"] == "OPEN"
    assert len({r["image"] for r in train + test}) == 2 == len(list((out / "vqa_rad/images").iterdir()))
    failures = (out / "vqa-rad.failures.tsv").read_text().splitlines()
    assert failures[0] == "unit\tstatus\treason" and len(failures) == 3
    assert "train:vqa-rad-train-00003\tskipped\tno image bytes" in failures
    report = json.loads((out / "vqa-rad.prepare.json").read_text())
    assert report["files"] == {"fetched": 2, "reused": 0, "failed": 0}

    # what `medzoo eval MODEL --benchmark vqa-rad --data OUT/vqa_rad/test.json` and the recipes read
    from medzoo.plugins.benchmarks.medvqa import VqaRadBenchmark
    from medzoo.plugins.datasets.med_vqa import MedVqaReader

    items = VqaRadBenchmark().load(str(out / "vqa_rad/test.json"))
    assert [(i.question, i.answer, i.answer_type) for i in items] == [
        ("Where is the lesion?", "left lobe", "open"), ("Is it normal?", "no", "closed")]
    assert all(Path(i.image).is_file() for i in items)
    kept, report = MedVqaReader().read(str(out / "vqa_rad/train.json"), image_root=str(out / "vqa_rad/images"))
    assert len(kept) == 3 and not report.skipped

    hits, before = dict(server.hits), (out / "vqa_rad/test.json").read_bytes()
    printed = run_cli(capsys, "data", "prepare", "vqa-rad", *sources, "--output", out, *FAST)
    assert "files fetched 0, reused 2, failed 0" in printed
    assert dict(server.hits) == hits  # nothing was requested again
    assert (out / "vqa_rad/test.json").read_bytes() == before


def test_a_broken_connection_resumes_with_range_and_ends_byte_identical(server, tmp_path, capsys):
    out = tmp_path / "data"
    sources = vqa_server(server)
    server.cut_after[f"vqa/{TRAIN_FILE}"] = 100
    run_cli(capsys, "data", "prepare", "vqa-rad", *sources, "--output", out, *FAST)
    assert server.ranges == [(f"vqa/{TRAIN_FILE}", "bytes=100-")]
    fetched = out / "downloads/vqa-rad/url" / TRAIN_FILE
    assert fetched.read_bytes() == server.files[f"vqa/{TRAIN_FILE}"]
    assert not list(fetched.parent.glob("*.part*"))


def test_a_server_that_ignores_range_restarts_the_file(server, tmp_path, capsys):
    out = tmp_path / "data"
    sources = vqa_server(server)
    server.support_range = False
    server.cut_after[f"vqa/{TRAIN_FILE}"] = 100
    printed = run_cli(capsys, "data", "prepare", "vqa-rad", *sources, "--output", out, *FAST)
    assert "files fetched 2" in printed and server.hits[f"vqa/{TRAIN_FILE}"] == 2
    assert (out / "downloads/vqa-rad/url" / TRAIN_FILE).read_bytes() == server.files[f"vqa/{TRAIN_FILE}"]


def test_a_file_cut_short_without_retries_fails_then_the_next_run_resumes_it(server, tmp_path, capsys):
    out = tmp_path / "data"
    sources = vqa_server(server)
    server.cut_after[f"vqa/{TRAIN_FILE}"] = 100
    printed = run_cli(capsys, "data", "prepare", "vqa-rad", *sources, "--output", out, "--no-progress",
                      "--retries", "0")
    assert "files fetched 1, reused 0, failed 1" in printed
    assert (out / "downloads/vqa-rad/url" / f"{TRAIN_FILE}.part").stat().st_size == 100
    printed = run_cli(capsys, "data", "prepare", "vqa-rad", *sources, "--output", out, *FAST)
    assert "files fetched 1, reused 1, failed 0" in printed
    assert server.ranges == [(f"vqa/{TRAIN_FILE}", "bytes=100-")]
    assert (out / "downloads/vqa-rad/url" / TRAIN_FILE).read_bytes() == server.files[f"vqa/{TRAIN_FILE}"]


def test_kill_9_mid_download_then_rerun_finishes_without_refetching(server, tmp_path, capsys):
    out = tmp_path / "data"
    first = server.files["vqa/test-small.parquet"] = parquet_bytes(VQA_TEST[:2])
    big = [{"image": png((0, 0, 0), 96, noise=True), "question": f"q{i}", "answer": "yes"} for i in range(8)]
    server.files["vqa/train-big.parquet"] = parquet_bytes(big)
    server.slow["vqa/train-big.parquet"] = 0.02
    sources = ["--source", server.url("vqa/test-small.parquet"), "--source", server.url("vqa/train-big.parquet")]
    code = ("import sys; from medzoo.app.cli.data import data; "
            "data(sys.argv[1:], standalone_mode=False)")
    child = subprocess.Popen([sys.executable, "-c", code, "prepare", "vqa-rad", *sources, "--output", str(out),
                              *FAST], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    part = out / "downloads/vqa-rad/url/train-big.parquet.part"
    wait_for(lambda: (part.is_file() and part.stat().st_size > 16384) or child.poll() is not None,
             "the download writing its .part file", poll_s=0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert part.is_file() and 0 < part.stat().st_size < len(server.files["vqa/train-big.parquet"])
    server.slow.clear()
    printed = run_cli(capsys, "data", "prepare", "vqa-rad", *sources, "--output", out, *FAST)
    assert "files fetched 1, reused 1, failed 0" in printed
    assert server.hits["vqa/test-small.parquet"] == 1  # finished before the kill: not fetched again
    assert [path for path, _ in server.ranges] == ["vqa/train-big.parquet"]
    assert (out / "downloads/vqa-rad/url/test-small.parquet").read_bytes() == first
    assert (out / "downloads/vqa-rad/url/train-big.parquet").read_bytes() == server.files["vqa/train-big.parquet"]
    assert len(records(out / "vqa_rad/train.json")) == 8


def test_local_original_releases_are_converted(tmp_path, capsys):
    rad = tmp_path / "osf"
    (rad / "VQA_RAD Image Folder").mkdir(parents=True)
    (rad / "VQA_RAD Image Folder/synpic1.jpg").write_bytes(RED)
    osf = [
        {"qid": 1, "image_name": "synpic1.jpg", "question": "Is it normal?", "answer": "No",
         "answer_type": "CLOSED", "question_type": "ABN", "phrase_type": "freeform"},
        {"qid": 2, "image_name": "synpic1.jpg", "question": "What organ?", "answer": "liver",
         "answer_type": "OPEN", "question_type": "ORGAN", "phrase_type": "test_freeform"},
        {"qid": 3, "image_name": "synpic9.jpg", "question": "Gone?", "answer": "yes", "answer_type": "CLOSED",
         "question_type": "PRES", "phrase_type": "test_para"},
    ]
    (rad / "VQA_RAD Dataset Public.json").write_text(json.dumps(osf))
    out = tmp_path / "data"
    printed = run_cli(capsys, "data", "prepare", "vqa-rad", "--source", rad, "--output", out, "--no-progress")
    assert "records converted 2, skipped 1 (image not found: 1)" in printed
    assert [r["id"] for r in records(out / "vqa_rad/train.json")] == ["1"]
    assert records(out / "vqa_rad/test.json")[0]["answer_type"] == "OPEN"

    path = tmp_path / "pvqa"
    (path / "qas/test").mkdir(parents=True)
    (path / "images/test").mkdir(parents=True)
    (path / "images/test/test_0001.jpg").write_bytes(BLUE)
    qa = [{"image": "test_0001", "question": "Is this tissue?", "answer": "yes"},
          {"image": "test_0002", "question": "Missing?", "answer": "no"}]
    (path / "qas/test/test_qa.pkl").write_bytes(pickle.dumps(qa))
    (path / "qas/ans2label.pkl").write_bytes(pickle.dumps({"yes": 0}))  # not questions: passed over
    printed = run_cli(capsys, "data", "prepare", "pathvqa", "--source", path, "--output", out, "--no-progress")
    assert "records converted 1, skipped 1 (image not found: 1)" in printed
    converted = records(out / "pathvqa/test.json")
    assert converted[0]["image"] == "test/test_0001.jpg" and (out / "pathvqa/images/test/test_0001.jpg").is_file()

    from medzoo.plugins.benchmarks.medvqa import PathVqaBenchmark

    assert [i.answer for i in PathVqaBenchmark().load(str(out / "pathvqa/test.json"))] == ["yes"]


def slake_files(root: Path) -> None:
    records_ = [
        {"qid": 10, "img_name": "xmlab1/source.jpg", "question": "Which organ?", "answer": "Lung", "q_lang": "en",
         "answer_type": "OPEN", "content_type": "Organ", "modality": "CT", "location": "Chest"},
        {"qid": 11, "img_name": "xmlab1/source.jpg", "question": "哪个器官?", "answer": "肺", "q_lang": "zh",
         "answer_type": "OPEN", "content_type": "Organ", "modality": "CT", "location": "Chest"},
        {"qid": 12, "img_name": "xmlab2/source.jpg", "question": "Is it healthy?", "answer": "No", "q_lang": "en",
         "answer_type": "CLOSED", "content_type": "Abnormality", "modality": "MRI", "location": "Brain"},
        "not a record",
    ]
    (root / "test.json").write_text(json.dumps(records_, ensure_ascii=False), encoding="utf-8")
    with zipfile.ZipFile(root / "imgs.zip", "w") as archive:
        archive.writestr("imgs/xmlab1/source.jpg", RED)
        archive.writestr("imgs/xmlab2/source.jpg", b"broken")
        archive.writestr("__MACOSX/imgs/._x", b"junk")


def test_slake_from_the_hub_uses_huggingface_hub_and_reruns_offline(tmp_path, capsys, monkeypatch):
    published = tmp_path / "hub"
    published.mkdir()
    slake_files(published)
    (published / "KG.zip").write_bytes(b"not wanted")
    calls: list[str] = []

    def list_files(repo_id):
        calls.append(f"list {repo_id}")
        return [hub.HubFile(p.name, p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
                for p in sorted(published.iterdir())]

    def fetch(repo_id, file, local_dir):
        calls.append(f"fetch {file.path}")
        target = Path(local_dir) / file.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((published / file.path).read_bytes())
        return target

    monkeypatch.setattr(hub, "list_files", list_files)
    monkeypatch.setattr(hub, "fetch", fetch)
    out = tmp_path / "data"
    printed = run_cli(capsys, "data", "prepare", "slake", "--output", out, "--no-progress")
    assert calls == ["list BoKelvin/SLAKE", "fetch imgs.zip", "fetch test.json"]  # KG.zip is not a pattern
    assert "files fetched 2, reused 0, failed 0" in printed
    assert "records converted 2, skipped 2 (not a json object: 1, unreadable image: 1)" in printed
    assert [r["qid"] for r in records(out / "slake/test.json")] == [10, 11]  # SLAKE's own records, kept

    from medzoo.plugins.benchmarks.medvqa import SlakeBenchmark

    assert [i.answer for i in SlakeBenchmark().load(str(out / "slake/test.json"))] == ["Lung"]  # English only

    calls.clear()
    monkeypatch.setattr(hub, "list_files", lambda repo_id: pytest.fail("the hub was asked again"))
    printed = run_cli(capsys, "data", "prepare", "slake", "--output", out, "--no-progress")
    assert calls == [] and "files fetched 0, reused 2, failed 0" in printed


def test_the_catalogue_hub_ids_are_the_benchmarks_registered_ones():
    from medzoo.plugins.benchmarks.registration import INFO  # what register_benchmarks registers

    with_benchmark = [source for source in dataset_sources.CATALOGUE.values() if source.benchmark is not None]
    assert {source.name for source in with_benchmark} == {"vqa-rad", "slake", "pathvqa", "pmc-vqa", "omnimedvqa",
                                                          "mmmu-med", "medxpertqa-mm", "gmai-mmbench"}
    for source in with_benchmark:
        assert source.hub_id in INFO[source.benchmark]["hub_ids"]


# -- LLaVA-Med files -----------------------------------------------------------------------------------------

def conversation(pair: str) -> dict:
    return {"id": pair, "image": f"{pair}.jpg", "conversations": [
        {"from": "human", "value": "<image>\nDescribe the figure."}, {"from": "gpt", "value": "A CT scan."}]}


def use_files(monkeypatch, name: str, files: dict[str, bytes], sha256: dict[str, str] | None = None) -> None:
    """Make the catalogue entry ``name`` hold ``files`` (digests: theirs unless given)."""
    entry = dataset_sources.CATALOGUE[name]
    remote = tuple(dataset_sources.RemoteFile(f"sub/{file}", ("http://127.0.0.1:9/never",),
                                        (sha256 or {}).get(file, hashlib.sha256(data).hexdigest()), len(data))
                   for file, data in files.items())
    monkeypatch.setitem(dataset_sources.CATALOGUE, name, dataclasses.replace(entry, files=remote))


def test_llava_med_json_is_fetched_by_url_checked_and_counted(server, tmp_path, capsys, monkeypatch):
    good = [conversation("1_F1"), conversation("2_F1"), {"id": "3_F1", "conversations": []}, "junk"]
    data = json.dumps(good).encode()
    use_files(monkeypatch, "llava-med-alignment", {"llava_med_alignment_500k.json": data})
    server.files["mirror/sub/llava_med_alignment_500k.json"] = data
    out = tmp_path / "data"
    (out / "images").mkdir(parents=True)
    (out / "images/1_F1.jpg").write_bytes(RED)
    printed = run_cli(capsys, "data", "prepare", "llava-med-alignment", "--source", server.url("mirror/"),
                      "--output", out, *FAST)
    assert "files fetched 1, reused 0, failed 0" in printed
    assert "records converted 2, skipped 2 (no image: 1, not a json object: 1)" in printed
    assert "1 records name a figure not in" in printed
    assert (out / "alignment/llava_med_alignment_500k.json").read_bytes() == data


def test_a_checksum_mismatch_is_one_line_naming_the_file_and_both_digests(server, tmp_path, capsys, monkeypatch):
    data = b'[{"question_id": 1, "image": "a.jpg", "text": "What is shown?"}]\n'
    use_files(monkeypatch, "llava-med-eval", {"llava_med_eval_qa50_qa.jsonl": data}, {
        "llava_med_eval_qa50_qa.jsonl": "0" * 64})
    server.files["eval/llava_med_eval_qa50_qa.jsonl"] = data
    out = tmp_path / "data"
    line = cli_error(capsys, "data", "prepare", "llava-med-eval", "--source",
                     server.url("eval/llava_med_eval_qa50_qa.jsonl"), "--output", out, *FAST)
    found = hashlib.sha256(data).hexdigest()
    assert "llava_med_eval_qa50_qa.jsonl: sha256 mismatch" in line and "0" * 64 in line and found in line
    assert not list((out / "eval").glob("*"))  # the bad download was removed


def test_when_every_file_fails_the_command_exits_non_zero(server, tmp_path, capsys, monkeypatch):
    use_files(monkeypatch, "llava-med-eval", {"llava_med_eval_qa50_qa.jsonl": b"x"})
    line = cli_error(capsys, "data", "prepare", "llava-med-eval", "--source", server.url("gone/"),
                     "--output", tmp_path / "data", *FAST)
    assert "llava-med-eval: nothing could be prepared" in line and "failures.tsv" in line
    assert "HTTP 404" in (tmp_path / "data/llava-med-eval.failures.tsv").read_text()


def test_no_socket_reaches_a_non_local_host(tmp_path, capsys, no_network):
    line = cli_error(capsys, "data", "prepare", "llava-med-eval", "--output", tmp_path / "data", *FAST)
    assert "nothing could be prepared" in line
    assert "media.githubusercontent.com" in no_network and "hanoverprod.z21.web.core.windows.net" in no_network
    with pytest.raises(OSError):
        socket.create_connection(("192.0.2.1", 80), timeout=1)


# -- LLaVA-Med images --------------------------------------------------------------------------------------

def package(pmc: str, members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(f"{pmc}/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_pmc_packages_fetched_figures_extracted_and_404s_listed(server, tmp_path, capsys):
    ftp = "https://ftp.ncbi.nlm.nih.gov/pub/pmc/oa_package"
    lines = [
        {"pmc_tar_url": f"{ftp}/aa/bb/PMC1.tar.gz", "image_file_path": "PMC1/fig1.jpg", "pair_id": "11_F1"},
        {"pmc_tar_url": f"{ftp}/aa/bb/PMC1.tar.gz", "image_file_path": "PMC1/fig9.jpg", "pair_id": "11_F9"},
        {"pmc_tar_url": f"{ftp}/cc/dd/PMC2.tar.gz", "image_file_path": "PMC2/f.jpg", "pair_id": "22_F1"},
        {"pmc_tar_url": f"{ftp}/ee/ff/PMC3.tar.gz", "image_file_path": "PMC3/g.jpg", "pair_id": "33_F1"},
        {"pmc_tar_url": f"{ftp}/ee/ff/PMC3.tar.gz", "image_file_path": "PMC3/g.jpg", "pair_id": "33_F1"},
        {"pmc_tar_url": f"{ftp}/ee/ff/PMC3.tar.gz", "image_file_path": "../../etc/passwd", "pair_id": "x"},
    ]
    text = "\n".join(json.dumps(line) for line in lines) + "\n{not json\n"
    server.files["urls.jsonl"] = text.encode()
    server.files["pmc/oa_package/aa/bb/PMC1.tar.gz"] = package("PMC1", {"fig1.jpg": RED, "text.nxml": b"<a/>"})
    server.files["pmc/oa_package/ee/ff/PMC3.tar.gz"] = package("PMC3", {"g.jpg": BLUE})
    out = tmp_path / "data"
    arguments = ["data", "prepare", "llava-med-images", "--source", server.url("urls.jsonl"), "--output", out,
                 "--pmc-mirror", server.url("pmc/"), "--workers", "2", *FAST]
    printed = run_cli(capsys, *arguments)
    assert "files fetched 3, reused 0, failed 1" in printed  # the list, PMC1, PMC3; PMC2 is gone (404)
    assert ("records converted 2, skipped 5 (duplicate pair_id: 1, figure not in package: 1, not a json line: 1, "
            "package not fetched: 1, unsafe pair_id or image_file_path: 1)") in printed
    assert (out / "images/11_F1.jpg").read_bytes() == RED and (out / "images/33_F1.jpg").read_bytes() == BLUE
    assert sorted(p.name for p in (out / "images").iterdir()) == ["11_F1.jpg", "33_F1.jpg"]
    assert not list((out / "downloads/llava-med-images/packages").glob("*.tar.gz"))  # removed once extracted
    failures = (out / "llava-med-images.failures.tsv").read_text()
    assert "PMC2\tfailed\tHTTP 404 Not Found; figures 22_F1" in failures
    assert "PMC1/11_F9\tskipped\tfigure not in package" in failures

    hits = dict(server.hits)
    printed = run_cli(capsys, *arguments)
    assert "files fetched 0, reused 3, failed 1" in printed and "records converted 2" in printed
    assert {path: server.hits[path] - hits.get(path, 0) for path in server.hits if server.hits[path] != hits.get(path)} \
        == {"pmc/oa_package/cc/dd/PMC2.tar.gz": 1}  # only the missing package is asked for again
    assert "PMC1/11_F9\tskipped\tfigure not in package" in (out / "llava-med-images.failures.tsv").read_text()


def test_when_every_pmc_package_is_gone_the_command_exits_non_zero(server, tmp_path, capsys):
    line = json.dumps({"pmc_tar_url": server.url("PMC9.tar.gz"), "image_file_path": "PMC9/a.jpg", "pair_id": "9"})
    server.files["urls.jsonl"] = (line + "\n").encode()
    message = cli_error(capsys, "data", "prepare", "llava-med-images", "--source", server.url("urls.jsonl"),
                        "--output", tmp_path / "data", *FAST)
    assert "llava-med-images: nothing could be prepared" in message


# -- ColonINST ------------------------------------------------------------------------------------------------

def coloninst_record(identifier: str, question: str, answer: str) -> dict:
    return {"id": identifier, "image": identifier.rsplit("/", 1)[-1].split(".")[0], "conversations": [
        {"from": "human", "value": f"<image>\n{question}"}, {"from": "gpt", "value": answer}]}


def test_a_local_coloninst_copy_is_checked_and_laid_out(tmp_path, capsys):
    release = tmp_path / "ColonINST"
    (release / "Json-file/test").mkdir(parents=True)
    (release / "Positive-images/CVC-ClinicDB/Test/polyp").mkdir(parents=True)
    (release / "Positive-images/CVC-ClinicDB/Test/polyp/1.png").write_bytes(RED)
    test = [coloninst_record("CVC-ClinicDB/Test/polyp/1.png", "Classify the object's category.", "polyp"),
            coloninst_record("SUN-database/Test/polyp/7.jpg", "Classify the object's category.", "polyp"),
            {"id": "x"}]
    (release / "Json-file/test/ColonINST-test-cls.json").write_text(json.dumps(test))
    out = tmp_path / "data"
    printed = run_cli(capsys, "data", "prepare", "coloninst", "--source", release, "--output", out, "--no-progress")
    assert "records converted 1, skipped 2 (image missing (SUN-database): 1, no conversations list: 1)" in printed
    assert "by source data set: SUN-database 1" in printed
    copied = out / "Json-file/test/ColonINST-test-cls.json"
    assert copied.read_bytes() == (release / "Json-file/test/ColonINST-test-cls.json").read_bytes()  # as released
    assert (out / "Positive-images").is_symlink()

    from medzoo.plugins.benchmarks.coloninst import ColonInstClsBenchmark

    items = ColonInstClsBenchmark(require_images=False).load(str(copied), image_root=str(out / "Positive-images"))
    assert items[0].image is not None and Path(items[0].image).is_file()


def test_coloninst_without_a_source_says_where_it_comes_from(tmp_path, capsys):
    line = cli_error(capsys, "data", "prepare", "coloninst", "--output", tmp_path)
    assert "must be requested" in line and "--source DIR" in line


# -- errors and the manifest -------------------------------------------------------------------------------------

def test_an_unknown_name_or_source_is_one_line(tmp_path, capsys):
    assert 'did you mean "vqa-rad"' in cli_error(capsys, "data", "prepare", "vqa-radd", "--output", tmp_path)
    line = cli_error(capsys, "data", "prepare", "vqa-rad", "--source", "./nowhere", "--output", tmp_path)
    assert "--source './nowhere': no such file or folder" in line


def test_the_manifest_drops_a_line_torn_by_a_kill(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"abc")
    journal = tmp_path / "manifest.jsonl"
    manifest = Manifest(journal, tmp_path)
    manifest.add_file(tmp_path / "a.bin", "digest", "src")
    with journal.open("ab") as handle:
        handle.write(b'{"file": "b.bin", "si')  # killed mid-line
    manifest = Manifest(journal, tmp_path)
    assert manifest.finished(tmp_path / "a.bin")["sha256"] == "digest" and list(manifest.files) == ["a.bin"]
    manifest.add_unit("PMC1", extracted=1)
    assert Manifest(journal, tmp_path).unit_done("PMC1")
    (tmp_path / "a.bin").write_bytes(b"abcd")  # changed size: no longer finished
    assert Manifest(journal, tmp_path).finished(tmp_path / "a.bin") is None


def test_a_file_prepare_did_not_write_is_never_replaced(server, tmp_path, capsys):
    out = tmp_path / "data"
    (out / "vqa_rad").mkdir(parents=True)
    (out / "vqa_rad/test.json").write_text("[]  # LLaVA-Med's own test.json\n")
    line = cli_error(capsys, "data", "prepare", "vqa-rad", *vqa_server(server), "--output", out, *FAST)
    assert "vqa_rad/test.json: a file `medzoo data prepare` did not write" in line and "refusing" in line
    assert (out / "vqa_rad/test.json").read_text() == "[]  # LLaVA-Med's own test.json\n"
    assert not (out / "vqa_rad/train.json").exists()  # refused before anything was written


def test_a_full_disk_is_one_line_with_the_storage_exit_code(server, tmp_path, capsys, monkeypatch):
    import errno

    from medzoo.app.data_prepare import downloads

    def full(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(downloads.os, "fsync", full)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(["data", "prepare", "vqa-rad", *vqa_server(server), "--output", str(tmp_path / "data"), *FAST])
    err = capsys.readouterr().err
    assert exited.value.code == 74 and "Traceback" not in err
    assert f"downloads/vqa-rad/url: no space left on the device (ENOSPC) while writing {TRAIN_FILE}.part" in err


def test_only_the_figures_a_json_names_are_fetched(server, tmp_path, capsys):
    lines = [{"pmc_tar_url": server.url(f"PMC{n}.tar.gz"), "image_file_path": f"PMC{n}/f.jpg", "pair_id": f"{n}_F1"}
             for n in (1, 2)]
    server.files["urls.jsonl"] = "".join(json.dumps(line) + "\n" for line in lines).encode()
    for n in (1, 2):
        server.files[f"PMC{n}.tar.gz"] = package(f"PMC{n}", {"f.jpg": RED})
    instruct = tmp_path / "instruct.json"
    instruct.write_text(json.dumps([conversation("2_F1")]))
    out = tmp_path / "data"
    printed = run_cli(capsys, "data", "prepare", "llava-med-images", "--source", server.url("urls.jsonl"),
                      "--only-for", instruct, "--output", out, *FAST)
    assert "1 figures wanted by --only-for, 1 others left out" in printed
    assert server.hits["PMC1.tar.gz"] == 0 and [p.name for p in (out / "images").iterdir()] == ["2_F1.jpg"]


def test_the_default_hub_source_offline_fails_in_one_line_listing_why(tmp_path, capsys, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    line = cli_error(capsys, "data", "prepare", "pathvqa", "--output", tmp_path / "data", *FAST)
    assert "pathvqa: nothing could be prepared" in line
    failures = (tmp_path / "data/pathvqa.failures.tsv").read_text()
    assert "hf://datasets/flaviagiammarino/path-vqa\tfailed\tcannot list the files" in failures


def test_figures_already_on_disk_are_kept_and_their_packages_not_fetched(server, tmp_path, capsys):
    lines = [{"pmc_tar_url": server.url(f"PMC{n}.tar.gz"), "image_file_path": f"PMC{n}/f.jpg", "pair_id": f"{n}_F1"}
             for n in (1, 2)]
    server.files["urls.jsonl"] = "".join(json.dumps(line) + "\n" for line in lines).encode()
    server.files["PMC2.tar.gz"] = package("PMC2", {"f.jpg": RED})
    out = tmp_path / "data"
    (out / "images").mkdir(parents=True)
    (out / "images/1_F1.jpg").write_bytes(BLUE)  # from an earlier run of the official download_images.py
    printed = run_cli(capsys, "data", "prepare", "llava-med-images", "--source", server.url("urls.jsonl"),
                      "--output", out, *FAST)
    assert "files fetched 2, reused 1, failed 0" in printed and "records converted 2" in printed
    assert server.hits["PMC1.tar.gz"] == 0 and (out / "images/1_F1.jpg").read_bytes() == BLUE
