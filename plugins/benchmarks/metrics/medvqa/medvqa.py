"""Medical VQA metrics as LLaVA-Med computes them (an ``evaluate`` module; loads offline from this folder).

    metric = evaluate.load("/path/to/medzoo/plugins/benchmarks/metrics/medvqa")
    metric.compute(predictions=["yes"], references=["yes"], answer_types=["CLOSED"])
"""

import datasets
import evaluate

from medzoo.plugins.benchmarks.metrics.scoring import score_medvqa

_DESCRIPTION = """LLaVA-Med medical-VQA metrics in percent, equal to LLaVA-Med v1.0.0 run_eval_batch.py's to the last
digit: closed_accuracy (normalised reference is a substring of the normalised prediction, the official quirk),
closed_recall, open_recall (token recall, the paper's Open column), open_accuracy, exact_match, precision, f1,
bleu, bleu_1, bleu_2, bleu_3, and the counts n, n_open, n_closed. Named extras: closed_accuracy_strict
(whole-word / first yes-no word), closed_accuracy_run_eval (run_eval.py's yes/no gate) and, given
candidates (train_open_answers.json), open_accuracy_run_eval."""

_CITATION = """@inproceedings{li2023llavamed,
  title={LLaVA-Med: Training a Large Language-and-Vision Assistant for Biomedicine in One Day},
  author={Li, Chunyuan and Wong, Cliff and Zhang, Sheng and others},
  booktitle={NeurIPS Datasets and Benchmarks},
  year={2023}
}"""

_INPUTS = """predictions: model answers; references: ground-truth answers; answer_types: OPEN or CLOSED per question;
candidates (keyword, optional): the training set's open answers, a list or {"0": [...]}."""


class Medvqa(evaluate.Metric):
    """LLaVA-Med open/closed VQA scoring."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("string"),
                    "references": datasets.Value("string"),
                    "answer_types": datasets.Value("string"),
                }
            ),
        )

    def _compute(self, predictions, references, answer_types, candidates=None):
        return score_medvqa(predictions, references, answer_types, candidates=candidates)
