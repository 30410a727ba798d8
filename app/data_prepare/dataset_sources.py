"""The data sets ``medzoo data prepare NAME`` knows: one plain :class:`DatasetSource` per NAME.

A new data set is a few lines here: its kind (how it is prepared), the folder it goes to under ``--output``,
and where it comes from by default (a Hugging Face dataset id and file patterns, or files with mirror URLs and,
where known, their sha256).
"""

from __future__ import annotations

from dataclasses import dataclass

from medzoo.core.errors import DataError, did_you_mean

#: how a data set is prepared (see :mod:`medzoo.app.data_prepare.run`)
KINDS = ("vqa", "files", "pmc-images", "coloninst", "multiple-choice", "omnimedvqa", "multi-image",
         "gmai-mmbench")

#: LLaVA-Med's data as committed (Git LFS) to microsoft/LLaVA-Med, pinned to the commit that added it; the
#: hanoverprod URLs of its download_data.sh answer "website not configured" since 2025 (issues #121, #122)
LLAVA_MED_LFS = "https://media.githubusercontent.com/media/microsoft/LLaVA-Med/d406e3fc7c3d1e4c797a7676de18cbfd070b6d2c/data"
LLAVA_MED_AZURE = "https://hanoverprod.z21.web.core.windows.net/med_llava"
#: the prefix of every package URL in llava_med_image_urls.jsonl (replaced by ``--pmc-mirror``)
PMC_FTP = "https://ftp.ncbi.nlm.nih.gov/pub/pmc/"


@dataclass(frozen=True)
class RemoteFile:
    """One file of a data set: its path in the publisher's layout (a base URL or folder given as ``--source``
    holds it there), mirror URLs (tried in order) and, where known, its size and sha256 (a file that does not
    match is an error)."""

    path: str
    urls: tuple[str, ...]
    sha256: str | None = None
    size: int | None = None

    @property
    def name(self) -> str:
        """The file name, which is also its name in the output."""
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class DatasetSource:
    """What ``medzoo data prepare NAME`` fetches or converts, and where the result goes (``folder`` under
    ``--output``, default ``default_output``)."""

    name: str
    kind: str
    folder: str
    description: str
    hub_id: str | None = None
    #: file names (fnmatch patterns) taken from the hub dataset
    hub_patterns: tuple[str, ...] = ()
    files: tuple[RemoteFile, ...] = ()
    default_output: str = "data/llava-med"
    #: the benchmark whose registered hub ids include ``hub_id`` (checked by the tests)
    benchmark: str | None = None
    #: why there is no default download (a local copy is needed), shown when ``--source`` is missing
    local_only: str | None = None


def llava_med_file(path: str, sha256: str, size: int) -> RemoteFile:
    """A file of LLaVA-Med's ``data/`` folder: the Git LFS copy first, then the original Azure URL."""
    return RemoteFile(path, (f"{LLAVA_MED_LFS}/{path}", f"{LLAVA_MED_AZURE}/{path}"), sha256, size)


VQA_PATTERNS = ("*.parquet",)

CATALOGUE: dict[str, DatasetSource] = {
    source.name: source
    for source in (
        DatasetSource(
            "vqa-rad", "vqa", "vqa_rad", "VQA-RAD (Hugging Face parquet copy, or the OSF release json + images)",
            hub_id="flaviagiammarino/vqa-rad", hub_patterns=VQA_PATTERNS, benchmark="vqa-rad",
        ),
        DatasetSource(
            "slake", "vqa", "slake", "SLAKE (train/validation/test json + imgs.zip, or parquet shards)",
            hub_id="BoKelvin/SLAKE", hub_patterns=(*VQA_PATTERNS, "train.json", "validation.json", "test.json",
                                                   "imgs.zip"),
            benchmark="slake",
        ),
        DatasetSource(
            "pathvqa", "vqa", "pathvqa", "PathVQA (Hugging Face parquet copy, or the release's qas/*.pkl + images)",
            hub_id="flaviagiammarino/path-vqa", hub_patterns=VQA_PATTERNS, benchmark="pathvqa",
        ),
        DatasetSource(
            "pmc-vqa", "multiple-choice", "pmc_vqa",
            "PMC-VQA test_2.csv and both figure archives, as MedEvalKit fetches them (or the original release's "
            "test.csv + images.zip as --source)",
            hub_id="RadGenome/PMC-VQA", hub_patterns=("test_2.csv", "images.zip", "images_2.zip"), default_output="data",
            benchmark="pmc-vqa",
        ),
        DatasetSource(
            "omnimedvqa", "omnimedvqa", "omnimedvqa",
            "OmniMedVQA release archive (Images/ + QA_information/Open-access json, as MedEvalKit reads it), or "
            "the unpacked OmniMedVQA folder as --source (checked in place)",
            hub_id="foreverbeliever/OmniMedVQA", hub_patterns=("OmniMedVQA.zip",), default_output="data",
            benchmark="omnimedvqa",
        ),
        DatasetSource(
            "mmmu-med", "multi-image", "mmmu",
            "MMMU's Health & Medicine validation parquet files (five subjects, images embedded), as MedEvalKit "
            "loads them (or the snapshot folder as --source)",
            hub_id="MMMU/MMMU", hub_patterns=tuple(f"{subject}/validation-*.parquet" for subject in (
                "Basic_Medical_Science", "Clinical_Medicine", "Diagnostics_and_Laboratory_Medicine", "Pharmacy",
                "Public_Health")),
            default_output="data", benchmark="mmmu-med",
        ),
        DatasetSource(
            "medxpertqa-mm", "multi-image", "medxpertqa",
            "MedXpertQA's multimodal test split (MM/test.jsonl) and images.zip, as MedEvalKit fetches them",
            hub_id="TsinghuaC3I/MedXpertQA", hub_patterns=("MM/test.jsonl", "images.zip"), default_output="data",
            benchmark="medxpertqa-mm",
        ),
        DatasetSource(
            "gmai-mmbench", "gmai-mmbench", "gmai_mmbench",
            "GMAI-MMBench's VAL tsv (base64 images) as VLMEvalKit downloads it; the test parts (no answers) from "
            "the gated OpenGVLab/GMAI-MMBench with --source, or local tsv files or a folder",
            hub_id="VLMEval/GMAI-MMBench",
            hub_patterns=("GMAI-MMBench_VAL.tsv", "GMAI_mm_bench_TEST_part_*.tsv"), default_output="data",
            benchmark="gmai-mmbench",
        ),
        DatasetSource(
            "coloninst", "coloninst", "", "ColonINST (a local copy: Json-file/ and Positive-images/)",
            default_output="data/ColonINST",
            local_only=(
                "ColonINST's images come from 19 source data sets that each must be requested (see IntelliScope's "
                "docs/guideline-for-ColonINST.md); give the folder holding Json-file/ and Positive-images/ "
                "with --source DIR"
            ),
        ),
        DatasetSource(
            "llava-med-alignment", "files", "alignment", "LLaVA-Med stage-1 alignment json (500K PMC captions)",
            files=(llava_med_file(
                "alignment/llava_med_alignment_500k.json",
                "007456f3d6c2091466b3fb6cd0573f61a63fd0c937e568f44113d5a1f23e8b93", 358112840),),
        ),
        DatasetSource(
            "llava-med-instruct", "files", "instruct", "LLaVA-Med stage-2 instruction json (10K, 60K, 60K-IM)",
            files=(
                llava_med_file("instruct/llava_med_instruct_10k.json",
                               "84f75c2b83404fe7dd1631212b4ad73228a0dad77bb819ab29c511a535a279c8", 20176754),
                llava_med_file("instruct/llava_med_instruct_60k.json",
                               "cf84c82fb58e391d6cf198e2657b6fc8584a180509b8813c3604ce46f6275c19", 88758916),
                llava_med_file("instruct/llava_med_instruct_60k_inline_mention.json",
                               "b3649f4193a51215aee4519b44d8436a4200e182d6a78a3cb78672d97bea948a", 87669379),
                llava_med_file("instruct/llava_med_instruct_fig_captions.json",
                               "1d58b7befd2687695cbba04e4f51fd648899b25f4f567815eb49538faf6f07fb", 169224662),
            ),
        ),
        DatasetSource(
            "llava-med-eval", "files", "eval", "LLaVA-Med chat-benchmark questions (qa50) and its captions",
            files=(
                llava_med_file("eval/llava_med_eval_qa50_qa.jsonl",
                               "48c6b680a962dbf8caf63e3ded2bef7770dccf9c2602f32e5f05f4b907266f25", 262328),
                llava_med_file("eval/llava_med_eval_qa50_fig_captions.json",
                               "64a4de84f8959a049ab9de68572318c6a299194b24368084159ef1f4a259aa66", 53066),
            ),
        ),
        DatasetSource(
            "llava-med-images", "pmc-images", "images",
            "LLaVA-Med's PMC figures: each open-access package fetched, the named figure extracted",
            files=(llava_med_file(
                "llava_med_image_urls.jsonl",
                "2604441ec3d1f6324d21846cfd44f92eab29454beed1da42a98d943b41731e44", 128785989),),
        ),
    )
}


def dataset_source(name: str) -> DatasetSource:
    """The catalogue entry ``name``; an unknown name is a one-line error listing the known ones."""
    try:
        return CATALOGUE[name]
    except KeyError:
        raise DataError(
            f"unknown data set {name!r}{did_you_mean(name, CATALOGUE)}; known: {', '.join(CATALOGUE)}"
        ) from None
