"""Registers the built-in rewards. Each registration's ``tiny`` gives what the tests score: ``options``, a
``context`` (``RewardContext`` fields) and a ``right`` and a ``wrong`` completion (``{"completion": text, ...}``,
further keys overriding the context's fields), the right one earning the higher reward."""

from __future__ import annotations

from medzoo import Register, hookimpl

YES_NO = {"record_id": "vqa-rad-1", "reference": "yes", "question": "Is there a fracture?",
          "metadata": {"answer_type": "CLOSED"}}
LETTER = {"record_id": "pmc-1", "reference": "B", "question": "Which modality is shown?",
          "metadata": {"options": ["MRI", "CT", "Ultrasound", "X-ray"]}}
BOX = {"record_id": "rec-1", "reference": "{<10><20><50><60>}", "question": "Where is the polyp?",
       "metadata": {"task": "rec"}}
OPEN = {"record_id": "slake-1", "reference": "left lower lobe", "question": "Where is the lesion?",
        "metadata": {"answer_type": "OPEN"}}


@hookimpl
def register_rewards(register: Register) -> None:
    from medzoo.plugins.rewards.box_iou import BoxIouReward
    from medzoo.plugins.rewards.choice_letter import ChoiceLetterReward
    from medzoo.plugins.rewards.exact_match import ExactMatchReward
    from medzoo.plugins.rewards.format import FormatReward
    from medzoo.plugins.rewards.length import LengthReward
    from medzoo.plugins.rewards.token_f1 import TokenF1Reward

    register("exact-match", ExactMatchReward,
             description="closed answers, 1/0, normalised as VQA-RAD/SLAKE/PathVQA closed accuracy normalises them",
             tiny={"options": {}, "context": YES_NO,
                   "right": {"completion": "Yes."}, "wrong": {"completion": "No, there is none."}})
    register("choice-letter", ChoiceLetterReward,
             description="multiple-choice letter, MedVLM-R1's 1 / 0.5 / 0, judged by the benchmarks' answer parser",
             tiny={"options": {}, "context": LETTER,
                   "right": {"completion": "B"}, "wrong": {"completion": "The answer is A."}})
    register("box-iou", BoxIouReward,
             description="IoU of a ColonINST REC box, read by the IntelliScope evaluator's box parser",
             tiny={"options": {}, "context": BOX,
                   "right": {"completion": "{<12><20><50><58>}"}, "wrong": {"completion": "{<60><70><90><99>}"}})
    register("token-f1", TokenF1Reward,
             description="token F1 or recall of an open answer, tokenised as the medical-VQA open metrics",
             tiny={"options": {"mode": "f1"}, "context": OPEN,
                   "right": {"completion": "The left lower lobe."}, "wrong": {"completion": "Right upper lobe"}})
    register("format", FormatReward,
             description="1 for <think>...</think><answer>...</answer> and nothing else, else 0 (MedVLM-R1)",
             tiny={"options": {}, "context": YES_NO,
                   "right": {"completion": "<think>A cortical break.</think><answer>yes</answer>"},
                   "wrong": {"completion": "yes <answer>yes</answer>"}})
    register("length", LengthReward,
             description="DAPO's soft overlong penalty: 0 up to max_tokens - cache_tokens, linearly down to -1",
             tiny={"options": {"max_tokens": 64, "cache_tokens": 16}, "context": YES_NO,
                   "right": {"completion": "yes", "completion_tokens": 2},
                   "wrong": {"completion": "yes " * 60, "completion_tokens": 60}})
