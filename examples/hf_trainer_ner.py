"""Hugging Face's ``run_ner.py`` flow on CoNLL-2003 with a masked CRF head (``mcrf.hf``).

Relative to plain HF token classification a user changes two lines: the import (``import mcrf.hf``)
and the model class (``MaskedCRFForTokenClassification`` instead of ``AutoModelForTokenClassification``).
Tokenizing with ``-100`` on special tokens and non-first sub-words, ``DataCollatorForTokenClassification``,
``Trainer``, the seqeval ``compute_metrics`` over an argmax and ``save_pretrained`` are run_ner.py's.

Optional, to match ``mcrf train``'s recipe for fine-tuned encoders: ``--head_lr`` and ``--layer_decay`` give
the tag-score layer and the CRF their own learning rate and the encoder layer-wise decay (an AdamW built by
``mcrf.hf.optim.build_optimizer`` and handed to ``Trainer(optimizers=...)``; the Trainer keeps its
own linear warmup/decay schedule). Leave them unset for the Trainer's single-rate AdamW.

``TrainingArguments`` flags work as with any HF model (``--fp16``, ``--bf16``, ``--gradient_accumulation_steps``,
``--gradient_checkpointing``, and ``torchrun``/``accelerate launch`` for several GPUs), except
``--label_smoothing_factor``: the CRF computes its own loss::

    python examples/hf_trainer_ner.py --model_name_or_path bert-base-cased --data_dir ~/corpora \\
        --output_dir runs/hf-conll --num_train_epochs 3 --per_device_train_batch_size 32 --learning_rate 5e-5

``--data_dir`` holds CoNLL-2003 (``eng.train``/``eng.testa``/``eng.testb`` or a ``conll2003/`` folder of
them); read with ``mcrf.data.load_corpus``, which converts the original IOB1 tags to BIO. Without it the
corpus comes from the hub (``--dataset_name``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from seqeval.metrics import f1_score, precision_score, recall_score
from transformers import (AutoTokenizer, DataCollatorForTokenClassification, HfArgumentParser, Trainer,
                          TrainingArguments)

import mcrf.hf  # noqa: F401  (change 1 of 2: registers the masked-CRF model with transformers)
from mcrf.hf import MaskedCRFForTokenClassification  # change 2 of 2: the model class


@dataclass
class ScriptArguments:
    model_name_or_path: str = field(metadata={"help": "backbone: hub id or folder (e.g. bert-base-cased)"})
    dataset_name: str = field(default="conll2003", metadata={"help": "registered mcrf name or hub id"})
    data_dir: Optional[str] = field(default=None, metadata={"help": "folder with the corpus files"})
    max_train_samples: Optional[int] = field(default=None, metadata={"help": "train on the first N sentences"})
    max_seq_length: Optional[int] = field(default=None, metadata={"help": "truncate longer inputs (sub-words)"})
    scheme: Optional[str] = field(default=None, metadata={"help": "tag scheme (default: detected from the labels)"})
    mode: str = field(default="mcrf", metadata={"help": "mcrf, mcrf-decoding or crf"})
    head_lr: Optional[float] = field(default=None, metadata={"help": "learning rate of the linear layer and CRF"})
    layer_decay: Optional[float] = field(default=None, metadata={"help": "layer-wise lr decay of the encoder"})
    threads: Optional[int] = field(default=None, metadata={"help": "torch CPU threads"})


def load_splits(args: ScriptArguments):
    """train/dev/test as lists of (words, tags), and the label list (BIO for CoNLL-2003)."""
    from mcrf.data import load_corpus

    corpus = load_corpus(args.dataset_name, data_dir=args.data_dir)
    splits = {name: [(list(s.tokens), list(s.tags)) for s in corpus.splits.get(name) or []]
              for name in ("train", "dev", "test")}
    splits["train"] = splits["train"][: args.max_train_samples]
    return splits, list(corpus.labels)


def main() -> None:
    import datasets
    import torch

    args, training_args = HfArgumentParser((ScriptArguments, TrainingArguments)).parse_args_into_dataclasses()
    if args.threads:
        torch.set_num_threads(args.threads)
    splits, labels = load_splits(args)
    label2id = {label: i for i, label in enumerate(labels)}
    id2label = dict(enumerate(labels))

    tokenizer = AutoTokenizer.from_pretrained(args.model_name_or_path)
    model = MaskedCRFForTokenClassification.from_pretrained(  # was AutoModelForTokenClassification
        args.model_name_or_path, id2label=id2label, label2id=label2id, scheme=args.scheme, mode=args.mode)

    def tokenize_and_align_labels(examples):  # run_ner.py's, label_all_tokens=False
        tokenized = tokenizer(examples["tokens"], truncation=True, max_length=args.max_seq_length,
                              is_split_into_words=True)
        all_labels = []
        for i, tags in enumerate(examples["ner_tags"]):
            previous, ids = None, []
            for word in tokenized.word_ids(batch_index=i):
                ids.append(-100 if word is None or word == previous else label2id[tags[word]])
                previous = word
            all_labels.append(ids)
        tokenized["labels"] = all_labels
        return tokenized

    data = {name: datasets.Dataset.from_dict({"tokens": [w for w, _ in rows], "ner_tags": [t for _, t in rows]})
            .map(tokenize_and_align_labels, batched=True, remove_columns=["tokens", "ner_tags"])
            for name, rows in splits.items() if rows}

    def compute_metrics(p):  # run_ner.py's: argmax over the last axis, -100 positions dropped
        predictions, gold = p
        predictions = np.argmax(predictions, axis=2)
        true_predictions = [[id2label[int(q)] for q, g in zip(pred, lab) if g != -100]
                            for pred, lab in zip(predictions, gold)]
        true_labels = [[id2label[int(g)] for q, g in zip(pred, lab) if g != -100]
                       for pred, lab in zip(predictions, gold)]
        return {"precision": precision_score(true_labels, true_predictions),
                "recall": recall_score(true_labels, true_predictions),
                "f1": f1_score(true_labels, true_predictions)}

    optimizers = (None, None)
    if args.head_lr is not None or args.layer_decay is not None:  # mcrf train's recipe (optional)
        from mcrf.hf.optim import build_optimizer

        optimizers = (build_optimizer(model, lr=training_args.learning_rate,
                                      head_lr=args.head_lr or training_args.learning_rate,
                                      layer_decay=args.layer_decay or 1.0,
                                      weight_decay=training_args.weight_decay), None)
    trainer = Trainer(model=model, args=training_args, train_dataset=data["train"], eval_dataset=data["dev"],
                      processing_class=tokenizer, data_collator=DataCollatorForTokenClassification(tokenizer),
                      compute_metrics=compute_metrics, optimizers=optimizers)
    trainer.train()
    trainer.save_model()
    results = {"dev": trainer.evaluate(data["dev"], metric_key_prefix="dev")}
    if "test" in data:
        results["test"] = trainer.predict(data["test"], metric_key_prefix="test").metrics
    print(json.dumps(results, indent=1))
    if trainer.is_world_process_zero():
        with open(f"{training_args.output_dir}/results.json", "w", encoding="utf-8") as out:
            json.dump({"argv": sys.argv[1:], **results}, out, indent=1)


if __name__ == "__main__":
    main()
