"""ColonINST metrics (an ``evaluate`` module; loads offline from this folder).

    metric = evaluate.load("/path/to/medzoo/plugins/benchmarks/metrics/coloninst")
    metric.compute(predictions=["{<1><2><30><40>}"], references=["{<1><2><30><40>}"], task="rec")
"""

import datasets
import evaluate

from medzoo.plugins.benchmarks.metrics.scoring import score_coloninst

_DESCRIPTION = """ColonINST metrics in percent, the IntelliScope evaluator's to the last digit. Predictions are
lower-cased with <|endoftext|> removed, references lower-cased, nothing stripped. task="cls" or "reg": accuracy
(exact match). task="rec": the integers inside <...> (spaces allowed) form the box (anything but four on either
side -> IoU 0), IoU with inclusive pixel corners (VOC +1); mean_iou, acc_at_0_5 (IoU > 0.5; the evaluator's
precision), precision, recall (the evaluator's hit / 4). Options: strip_whitespace, strict_references."""

_CITATION = """@article{ji2024frontiers,
  title={Frontiers in Intelligent Colonoscopy},
  author={Ji, Ge-Peng and Liu, Jingyi and Xu, Peng and others},
  journal={arXiv preprint arXiv:2410.17241},
  year={2024}
}"""

_INPUTS = """predictions: model outputs; references: ground-truth answers; task: cls, reg or rec (keyword);
strip_whitespace, strict_references (keywords, default false)."""


class Coloninst(evaluate.Metric):
    """ColonINST CLS / REG / REC scoring."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, task="cls", strip_whitespace=False, strict_references=False):
        return score_coloninst(
            predictions, references, task, strip_whitespace=strip_whitespace, strict_references=strict_references
        )
