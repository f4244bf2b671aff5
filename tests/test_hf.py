"""mcrf.hf: the masked CRF as a Hugging Face token classifier (Trainer, AutoModel, pipeline, conversion).

A tiny random BERT (tests/tiny_models.py) and toy/sample data; nothing is downloaded.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from tiny_models import TOY_LABELS, make_bert_dir, one_torch_thread, toy_sentences  # noqa: F401

import mcrf.hf  # noqa: E402  (registers the classes)
from packaging.version import Version  # noqa: E402  (a dependency of transformers)
from mcrf.crf.schemes import is_legal  # noqa: E402
from mcrf.crf.spans import get_spans  # noqa: E402
from mcrf.errors import ConfigError, DataError  # noqa: E402
from mcrf.hf import MaskedCRFForTokenClassification  # noqa: E402

ID2LABEL = dict(enumerate(TOY_LABELS))
TEXTS = ["john smith visited paris .", "the acme corp said mary smith met lee today .",
         "peter jones works for google in new york .", ""]


def aligned(tokenizer, sentences, label2id):
    """run_ner.py's tokenize_and_align_labels (label_all_tokens=False), one dict per sentence."""
    rows = []
    for sentence in sentences:
        encoding = tokenizer(list(sentence.tokens), is_split_into_words=True, truncation=True)
        previous, labels = None, []
        for word in encoding.word_ids():
            labels.append(-100 if word is None or word == previous else label2id[sentence.tags[word]])
            previous = word
        rows.append({**encoding, "labels": labels})
    return rows


def run_ner_metrics(id2label):
    """run_ner.py's compute_metrics: seqeval over the argmax with the -100 positions dropped."""
    from seqeval.metrics import f1_score

    def compute_metrics(p):
        predictions, labels = p
        predictions = np.argmax(predictions, axis=2)
        true_predictions = [[id2label[int(q)] for q, g in zip(pred, lab) if g != -100]
                            for pred, lab in zip(predictions, labels)]
        true_labels = [[id2label[int(g)] for q, g in zip(pred, lab) if g != -100]
                       for pred, lab in zip(predictions, labels)]
        return {"f1": f1_score(true_labels, true_predictions)}

    return compute_metrics


def trainer_for(model, tokenizer, output_dir, **kwargs):
    from transformers import DataCollatorForTokenClassification, Trainer, TrainingArguments

    args = TrainingArguments(output_dir=str(output_dir), report_to="none", save_strategy="no", use_cpu=True,
                             disable_tqdm=True, per_device_train_batch_size=32, per_device_eval_batch_size=32,
                             dataloader_pin_memory=False, **kwargs)
    return Trainer(model=model, args=args, processing_class=tokenizer,
                   data_collator=DataCollatorForTokenClassification(tokenizer),
                   compute_metrics=run_ner_metrics(model.config.id2label))


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return make_bert_dir(tmp_path_factory.mktemp("bert"))


@pytest.fixture(scope="module")
def tokenizer(bert):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(bert))


@pytest.fixture(scope="module")
def mcrf_dir(bert, tmp_path_factory):
    """An ``mcrf`` tagger on the tiny BERT, trained a little on toy sentences (so it finds entities), saved."""
    from mcrf.models import Tagger
    from mcrf.models.config import TaggerConfig

    torch.manual_seed(0)
    tagger = Tagger.build(TaggerConfig(encoder=str(bert), labels=TOY_LABELS))
    collate = tagger.collator()
    optimizer = torch.optim.Adam(tagger.parameters(), lr=3e-3)
    sentences = toy_sentences(40, seed=1)
    tagger.train()
    for step in range(12):
        batch = collate(sentences[(step % 2) * 20:(step % 2) * 20 + 20])
        optimizer.zero_grad()
        tagger(batch).backward()
        optimizer.step()
    folder = tmp_path_factory.mktemp("mcrf") / "model"
    tagger.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def hf_dir(mcrf_dir, tmp_path_factory):
    from mcrf.hf.convert import convert

    return convert(mcrf_dir, tmp_path_factory.mktemp("hf") / "model")


# ---------------------------------------------------------------------------- Trainer
@pytest.fixture(scope="module")
def trained(bert, tokenizer, tmp_path_factory):
    """One epoch of Trainer.train() on the sample corpus (the run_ner.py recipe with the model class swapped)."""
    from mcrf.data import load_corpus

    corpus = load_corpus("sample")
    id2label = dict(enumerate(corpus.labels))
    label2id = {label: i for i, label in id2label.items()}
    torch.manual_seed(0)
    model = MaskedCRFForTokenClassification.from_pretrained(str(bert), id2label=id2label, label2id=label2id)
    before = model.classifier.weight.detach().clone()
    trainer = trainer_for(model, tokenizer, tmp_path_factory.mktemp("trainer"), num_train_epochs=1,
                          learning_rate=1e-3)
    trainer.train_dataset = aligned(tokenizer, corpus.splits["train"], label2id)
    result = trainer.train()
    return trainer, corpus, label2id, before, result


def test_trainer_trains_one_epoch_on_the_sample_corpus(trained):
    trainer, corpus, _, before, result = trained
    steps = -(-len(corpus.splits["train"]) // 32)
    assert result.global_step == steps and np.isfinite(result.training_loss)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert not torch.equal(before, trainer.model.classifier.weight.detach()), "the head did not train"
    assert all(np.isfinite(losses))


def test_trainer_predict_argmax_gives_only_legal_sequences(trained):
    trainer, corpus, label2id, _, _ = trained
    model = trainer.model
    with torch.no_grad():  # push the tag scores towards orphan I- tags, which a plain argmax would output
        for label, i in label2id.items():
            if label.startswith("I-"):
                model.classifier.bias[i] += 3.0
    rows = aligned(trainer.processing_class, corpus.splits["dev"], label2id)
    output = trainer.predict(rows)
    assert output.predictions.ndim == 3  # logits alone, as run_ner.py expects
    id2label = model.config.id2label
    paths = [[id2label[int(q)] for q, g in zip(pred, gold) if g != -100]
             for pred, gold in zip(output.predictions.argmax(axis=2), output.label_ids)]
    assert sum(not is_legal(path, "BIO") for path in paths) == 0
    assert any(tag.startswith("I-") for path in paths for tag in path)
    # the raw tag scores (training-mode logits) would break the scheme: the masked path is doing the work
    batch = trainer.data_collator(rows[:16])
    model.train()
    raw = model(**batch).logits.argmax(-1)
    model.eval()
    raw_paths = [[id2label[int(q)] for q, g in zip(r, b) if g != -100] for r, b in zip(raw, batch["labels"])]
    assert sum(not is_legal(path, "BIO") for path in raw_paths) > 0


def test_mixed_precision_keeps_the_crf_in_float32(trained):
    trainer, corpus, label2id, _, _ = trained
    batch = trainer.data_collator(aligned(trainer.processing_class, corpus.splits["dev"][:4], label2id))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = trainer.model(**batch, output_marginals=True)
    assert output.loss.dtype == torch.float32 and torch.isfinite(output.loss)
    assert output.marginals.dtype == torch.float32


# ---------------------------------------------------------------------------- saving and loading
def test_save_pretrained_then_auto_model_gives_identical_predictions(trained, tmp_path):
    from transformers import AutoModelForTokenClassification

    trainer, corpus, label2id, _, _ = trained
    trainer.save_model(str(tmp_path))  # model + tokenizer (processing_class), as run_ner.py saves
    names = {p.name for p in tmp_path.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= names
    assert not any(name.startswith("pytorch_model") for name in names)  # weights in safetensors only
    assert "masked-crf" in (tmp_path / "README.md").read_text(encoding="utf-8")
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "mcrf-token-classification"
    loaded = AutoModelForTokenClassification.from_pretrained(str(tmp_path))
    assert type(loaded) is MaskedCRFForTokenClassification
    batch = trainer.data_collator(aligned(trainer.processing_class, corpus.splits["dev"][:8], label2id))
    trainer.model.eval()
    loaded.eval()
    with torch.no_grad():
        a, b = trainer.model(**batch, output_marginals=True), loaded(**batch, output_marginals=True)
    assert torch.equal(a.logits, b.logits) and torch.allclose(a.marginals, b.marginals)
    assert torch.equal(a.loss, b.loss)
    mcrf.hf.register()  # registering again is harmless


# ---------------------------------------------------------------------------- conversion, pipeline, metrics
def _hf_tags(model, tokenizer, sentences):
    encoding = tokenizer([list(s.tokens) for s in sentences], is_split_into_words=True, padding=True,
                         return_tensors="pt")
    mask = mcrf.hf.word_mask(encoding)
    with torch.no_grad():
        logits = model.eval()(**encoding, word_mask=mask).logits
    return [[model.config.id2label[int(i)] for i in row[m].argmax(-1)] for row, m in zip(logits, mask)]


def test_conversion_round_trip_keeps_weights_and_predictions(mcrf_dir, hf_dir, tmp_path):
    from transformers import AutoTokenizer

    from mcrf.hf.convert import convert
    from mcrf.models import Tagger

    tagger = Tagger.from_pretrained(mcrf_dir)
    sentences = toy_sentences(30, seed=5)
    expected = [d.tags for d in tagger.predict(sentences)]
    assert any(tag != "O" for tags in expected for tag in tags)
    model = MaskedCRFForTokenClassification.from_pretrained(str(hf_dir))
    assert _hf_tags(model, AutoTokenizer.from_pretrained(str(hf_dir)), sentences) == expected
    back = Tagger.from_pretrained(convert(hf_dir, tmp_path / "back"))
    assert [d.tags for d in back.predict(sentences)] == expected
    original = tagger.state_dict()
    assert all(torch.equal(original[k], v) for k, v in back.state_dict().items())


def test_pipeline_entities_equal_mcrf_predict(mcrf_dir, hf_dir, tmp_path, capsys):
    from transformers import pipeline

    from mcrf.cli.app import main

    source = tmp_path / "input.txt"
    source.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    assert main(["predict", str(source), "--model", str(mcrf_dir), "--format", "jsonl", "--input-format",
                 "text"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    expected = [[(s["label"], s["char_start"], s["char_end"], s["text"]) for s in r["spans"]] for r in records]
    confidences = [[s["confidence"] for s in r["spans"]] for r in records]
    tagger = pipeline("mcrf-token-classification", model=str(hf_dir), aggregation_strategy="simple")
    found = [tagger(text) for text in TEXTS]
    assert [[(e["entity_group"], e["start"], e["end"], e["word"]) for e in ents] for ents in found] == expected
    assert sum(map(len, expected)) > 0
    for ents, confidence in zip(found, confidences):
        assert [round(e["score"], 4) for e in ents] == pytest.approx(confidence, abs=1e-4)


def test_pipeline_reads_long_texts_in_mcrf_predicts_windows_and_batches_them(mcrf_dir, tmp_path, capsys):
    """A text longer than the window is read in the same overlapping windows as by ``mcrf predict`` (no word
    is cut off), the window travels with ``mcrf convert`` both ways, and ``batch_size`` mixes long, short and
    empty texts without changing a result (transformers' collate keeps one row per text: it used to cut them)."""
    import shutil

    from transformers import pipeline

    from mcrf.cli.app import main
    from mcrf.hf.convert import convert

    small = tmp_path / "small"  # the trained tagger with a 16-sub-word window
    shutil.copytree(mcrf_dir, small)
    config = json.loads((small / "config.json").read_text(encoding="utf-8"))
    config["encoder_options"] = {"max_length": 16, "stride": 4}
    (small / "config.json").write_text(json.dumps(config), encoding="utf-8")
    hf = convert(small, tmp_path / "hf")
    saved = json.loads((hf / "config.json").read_text(encoding="utf-8"))
    assert (saved["window_size"], saved["window_stride"]) == (16, 4)
    back = json.loads((convert(hf, tmp_path / "back") / "config.json").read_text(encoding="utf-8"))
    assert back["encoder_options"] == {"max_length": 16, "stride": 4}

    long_text = " ".join(TEXTS[:3] * 3)  # 84 words: 8 windows of 14 words
    texts = [long_text] + TEXTS
    source = tmp_path / "input.txt"
    source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    assert main(["predict", str(source), "--model", str(small), "--format", "jsonl", "--input-format",
                 "text"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    expected = [[(s["label"], s["char_start"], s["char_end"]) for s in r["spans"]] for r in records]
    confidences = [[s["confidence"] for s in r["spans"]] for r in records]
    tagger = pipeline("mcrf-token-classification", model=str(hf))
    for found in (tagger(texts, batch_size=3), [tagger(text) for text in texts]):
        assert [[(e["entity_group"], e["start"], e["end"]) for e in ents] for ents in found] == expected
        for ents, confidence in zip(found, confidences):
            assert [e["score"] for e in ents] == pytest.approx(confidence, abs=1e-4)
    assert max(end for _, _, end in expected[0]) > len(long_text) * 3 // 4  # entities found in the last windows


def test_run_ner_compute_metrics_gives_mcrf_evaluate_f1(mcrf_dir, hf_dir, tmp_path, capsys):
    from transformers import AutoTokenizer

    from mcrf.cli.app import main

    from mcrf.data.types import Sentence

    sentences = [s if i % 3 else Sentence(s.tokens, tuple(t.replace("PER", "ORG") for t in s.tags))
                 for i, s in enumerate(toy_sentences(60, seed=9))]  # some gold the model gets wrong
    data = tmp_path / "toy"
    data.mkdir()
    (data / "test.txt").write_text("".join("".join(f"{w} {t}\n" for w, t in zip(s.tokens, s.tags)) + "\n"
                                           for s in sentences), encoding="utf-8")
    assert main(["evaluate", str(mcrf_dir), str(data / "test.txt"), "--json"]) == 0
    mcrf_f1 = json.loads(capsys.readouterr().out)["f1"]
    model = MaskedCRFForTokenClassification.from_pretrained(str(hf_dir))
    tokenizer = AutoTokenizer.from_pretrained(str(hf_dir))
    trainer = trainer_for(model, tokenizer, tmp_path / "out")
    metrics = trainer.predict(aligned(tokenizer, sentences, model.config.label2id)).metrics
    assert 0 < mcrf_f1 < 1
    assert metrics["test_f1"] == pytest.approx(mcrf_f1, abs=1e-9)


def test_optimizer_groups_give_each_weight_the_lr_mcrf_train_gives_it(mcrf_dir, hf_dir):
    from mcrf.hf.optim import optimizer_groups
    from mcrf.models import Tagger
    from mcrf.training.optim import param_groups

    def rates(groups, module):
        names = {id(p): n for n, p in module.named_parameters()}
        return {names[id(p)]: (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}

    recipe = {"lr": 5e-5, "head_lr": 1e-3, "layer_decay": 0.9, "weight_decay": 0.01}
    tagger = Tagger.from_pretrained(mcrf_dir)
    expected = {name.replace("encoder.model.", "encoder.", 1).replace("head.", "classifier.", 1): rate
                for name, rate in rates(param_groups(tagger, **recipe), tagger).items()}
    model = MaskedCRFForTokenClassification.from_pretrained(str(hf_dir))
    assert rates(optimizer_groups(model, **recipe), model) == expected
    assert len({lr for lr, _ in expected.values()}) == 4  # embeddings, 2 layers, head


def test_convert_command_writes_a_folder_auto_model_loads(mcrf_dir, tmp_path, capsys):
    from transformers import AutoModelForTokenClassification

    from mcrf.cli.app import main

    assert main(["convert", str(mcrf_dir), str(tmp_path / "hf")]) == 0
    assert type(AutoModelForTokenClassification.from_pretrained(str(tmp_path / "hf"))) is \
        MaskedCRFForTokenClassification
    assert main(["convert", str(mcrf_dir), str(tmp_path / "hf")]) == 1  # an existing folder is never overwritten
    assert "not an empty folder" in capsys.readouterr().err


# ---------------------------------------------------------------------------- wrong use
def _one_line(error) -> str:
    message = str(error.value)
    assert "\n" not in message and isinstance(error.value, ValueError)
    return message


@pytest.fixture(scope="module")
def fresh(bert):
    torch.manual_seed(0)
    return MaskedCRFForTokenClassification.from_pretrained(str(bert), id2label=ID2LABEL).eval()


def _batch(tokenizer, words, labels):
    encoding = tokenizer([words], is_split_into_words=True, return_tensors="pt")
    ids = [-100 if w is None else labels[w] for w in encoding.word_ids(0)]
    return {**encoding, "labels": torch.tensor([ids])}


def test_a_label_id_the_model_does_not_have_is_a_data_error(fresh, tokenizer):
    with pytest.raises(DataError) as error:
        fresh(**_batch(tokenizer, ["john", "visited", "paris"], [3, 0, 9]))
    assert "is not a label id of this model" in _one_line(error) and "0..6" in str(error.value)


def test_an_illegal_gold_sequence_under_mode_mcrf_is_a_data_error(fresh, tokenizer):
    with pytest.raises(DataError) as error:  # O -> I-PER
        fresh(**_batch(tokenizer, ["john", "visited", "paris"], [0, 6, 0]))
    assert "illegal gold tag sequence" in _one_line(error) and "'O' -> 'I-PER'" in str(error.value)


def test_a_backbone_without_token_level_output_is_a_config_error(tmp_path):
    from transformers import ViTConfig, ViTModel

    ViTModel(ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                       image_size=8, patch_size=4)).save_pretrained(str(tmp_path))
    with pytest.raises(ConfigError) as error:
        MaskedCRFForTokenClassification.from_pretrained(str(tmp_path), id2label=ID2LABEL)
    assert "no token-level output" in _one_line(error)


def test_a_scheme_that_does_not_fit_the_labels_is_a_config_error(bert):
    with pytest.raises(ConfigError) as error:
        MaskedCRFForTokenClassification.from_pretrained(str(bert), id2label=ID2LABEL, scheme="IOE2")
    assert "do not fit scheme 'IOE2'" in _one_line(error)
    with pytest.raises(ConfigError) as error:  # no labels at all: the placeholders LABEL_0, LABEL_1
        MaskedCRFForTokenClassification.from_pretrained(str(bert))
    assert "id2label" in _one_line(error)


def test_a_new_head_by_num_labels_alone_asks_for_the_tag_names(hf_dir):
    """from_pretrained(folder, num_labels=3), as for any HF head, gives placeholder labels a CRF cannot use."""
    with pytest.raises(ConfigError) as error:
        MaskedCRFForTokenClassification.from_pretrained(str(hf_dir), num_labels=3)
    assert "num_labels alone names no tags" in _one_line(error) and "id2label=" in str(error.value)


def test_prediction_without_labels_or_word_mask_and_remote_code_are_refused(fresh, tokenizer, bert):
    encoding = tokenizer([["john", "visited"]], is_split_into_words=True, return_tensors="pt")
    with pytest.raises(ConfigError) as error:
        fresh(**encoding)
    assert "word_mask" in _one_line(error)
    assert "label_smoothing_factor" in str(error.value)  # a Trainer with label smoothing takes the labels away
    with pytest.raises(ConfigError) as error:
        MaskedCRFForTokenClassification.from_pretrained(str(bert / "missing"), id2label=ID2LABEL)
    assert "no model folder at" in _one_line(error)
    with pytest.raises(ConfigError) as error:
        MaskedCRFForTokenClassification.from_pretrained(str(bert), id2label=ID2LABEL, trust_remote_code=True)
    assert "remote" in _one_line(error)


def test_the_scheme_is_detected_from_the_labels(fresh):
    assert fresh.config.scheme == "BIO" and fresh.crf.scheme == "BIO"
    spans = get_spans(["B-PER", "I-PER"], fresh.config.scheme)
    assert spans and spans[0].label == "PER"
    clone = copy.deepcopy(fresh.config)
    assert clone.labels == TOY_LABELS


def test_a_quiet_or_logged_command_prints_no_library_progress_bars(mcrf_dir, tmp_path):
    """``-q`` (and a stderr that is not a terminal) means no bars, transformers' own included
    ("Writing model shards" from ``save_pretrained``, "Loading weights" from ``from_pretrained``)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if not k.endswith("DISABLE_PROGRESS_BARS")}
    done = subprocess.run([sys.executable, "-m", "mcrf", "convert", str(mcrf_dir), str(tmp_path / "hf"), "-q"],
                          capture_output=True, text=True, cwd=root, timeout=300,
                          env={**env, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr


# ---------------------------------------------------------------------------- what HF users do besides the recipe
def test_a_scheme_whose_entities_the_labels_cannot_close_is_a_config_error(bert):
    """BIO labels under BIOES are all BIOES tags, but no legal path closes an entity: a ConfigError, not the
    CRF layer's bare ValueError."""
    with pytest.raises(ConfigError) as error:
        MaskedCRFForTokenClassification.from_pretrained(str(bert), id2label=ID2LABEL, scheme="BIOES")
    assert "do not fit scheme 'BIOES'" in _one_line(error) and "E-PER" in str(error.value)


def test_resized_token_embeddings_survive_save_and_load(hf_dir, tokenizer, tmp_path):
    model = MaskedCRFForTokenClassification.from_pretrained(str(hf_dir))
    size = len(tokenizer) + 8  # e.g. tokenizer.add_tokens([...]) then resize, as HF users do
    model.resize_token_embeddings(size, mean_resizing=False)
    model.save_pretrained(str(tmp_path))
    assert json.loads((tmp_path / "config.json").read_text())["backbone_config"]["vocab_size"] == size
    loaded = MaskedCRFForTokenClassification.from_pretrained(str(tmp_path))
    assert torch.equal(loaded.get_input_embeddings().weight, model.get_input_embeddings().weight)


def test_from_pretrained_with_a_dtype_casts_backbone_and_head_alike(bert, hf_dir, tokenizer):
    from transformers import pipeline

    # transformers < 4.56 names the keyword torch_dtype (and hands an unknown dtype= to the model's __init__)
    dtype = {"dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype": torch.bfloat16}
    fresh = MaskedCRFForTokenClassification.from_pretrained(str(bert), id2label=ID2LABEL, **dtype)
    loaded = MaskedCRFForTokenClassification.from_pretrained(str(hf_dir), **dtype)
    for model in (fresh, loaded):
        assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    encoding = tokenizer([["john", "visited", "paris"]], is_split_into_words=True, return_tensors="pt")
    assert fresh.eval()(**encoding, word_mask=mcrf.hf.word_mask(encoding)).logits.dtype == torch.float32
    tagger = pipeline("mcrf-token-classification", model=str(hf_dir), **dtype)
    assert [e["entity_group"] for e in tagger(TEXTS[0])] == ["PER", "LOC"]


def test_pipeline_takes_an_empty_list_a_tuple_and_a_dataset_column(hf_dir):
    from transformers import pipeline

    datasets = pytest.importorskip("datasets")
    tagger = pipeline("mcrf-token-classification", model=str(hf_dir))
    expected = [tagger(text) for text in TEXTS]
    assert tagger([]) == []
    assert tagger(tuple(TEXTS)) == expected
    _assert_same_entities(tagger(datasets.Dataset.from_dict({"text": TEXTS})["text"], batch_size=2), expected)


def _assert_same_entities(got, expected):
    """Equal entities, with scores equal up to float32 rounding, which varies with a batch's padded shape
    (two texts in one pass vs one each: 1e-6 apart on torch 2.4, bit-equal on 2.13)."""
    assert [[{k: v for k, v in e.items() if k != "score"} for e in row] for row in got] == \
        [[{k: v for k, v in e.items() if k != "score"} for e in row] for row in expected]
    assert [e["score"] for row in got for e in row] == pytest.approx([e["score"] for row in expected for e in row],
                                                                     abs=1e-5)


def test_gradient_checkpointing_gives_the_same_gradients(trained):
    trainer, corpus, label2id, _, _ = trained
    model = copy.deepcopy(trainer.model).train()
    model.dropout.p = 0.0  # the tiny BERT has no dropout either: both passes see the same network
    batch = trainer.data_collator(aligned(trainer.processing_class, corpus.splits["dev"][:4], label2id))

    def gradients():
        model.zero_grad()
        model(**batch).loss.backward()
        return [p.grad.clone() for p in model.parameters()]

    plain = gradients()
    # what TrainingArguments(gradient_checkpointing=True) calls (renamed activation_ in transformers 5)
    getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()
    assert any(getattr(m, "gradient_checkpointing", False) for m in model.encoder.modules())
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(plain, gradients()))


def test_trainer_predict_without_labels_reads_a_padded_word_mask_column(trained):
    """Trainer.predict on unlabelled text: a word_starts column, padded by DataCollatorForMaskedCRF, gives the
    paths that labelled prediction gives (DataCollatorForTokenClassification cannot batch the ragged column)."""
    from transformers import Trainer

    trainer, corpus, label2id, _, _ = trained
    tokenizer = trainer.processing_class
    sentences = corpus.splits["dev"][:12]
    labelled = trainer.predict(aligned(tokenizer, sentences, label2id))
    encoding = tokenizer([list(s.tokens) for s in sentences], is_split_into_words=True, truncation=True)
    starts = mcrf.hf.word_starts(encoding)
    rows = [{"input_ids": ids, "word_mask": mask} for ids, mask in zip(encoding["input_ids"], starts)]
    collator = mcrf.hf.DataCollatorForMaskedCRF(tokenizer)
    output = Trainer(model=trainer.model, args=trainer.args, data_collator=collator).predict(rows)
    expected = [row[gold != -100].argmax(-1).tolist() for row, gold in zip(labelled.predictions, labelled.label_ids)]
    found = [row[:len(mask)][np.array(mask)].argmax(-1).tolist() for row, mask in zip(output.predictions, starts)]
    assert found == expected and output.label_ids is None
    assert collator(rows[:1])["word_mask"].dtype == torch.bool


def test_pickled_weights_are_never_read(hf_dir, tmp_path):
    """Only model.safetensors is read: a folder with pytorch_model.bin alone, or use_safetensors=False (which
    transformers would honour by unpickling), is one ConfigError line."""
    from safetensors.torch import load_file

    (tmp_path / "config.json").write_text((hf_dir / "config.json").read_text(encoding="utf-8"), encoding="utf-8")
    torch.save(load_file(str(hf_dir / "model.safetensors")), str(tmp_path / "pytorch_model.bin"))
    for kwargs in ({}, {"use_safetensors": False}, {"use_safetensors": None}):
        with pytest.raises(ConfigError) as error:
            MaskedCRFForTokenClassification.from_pretrained(str(tmp_path), **kwargs)
        assert "safetensors" in _one_line(error)


@pytest.mark.parametrize("rule", ["retain", "discard"])
def test_a_plain_crf_pipeline_makes_illegal_paths_legal_as_mcrf_predict_does(hf_dir, tmp_path, capsys, rule):
    """Mode "crf" decodes without the masks, so its path may break the scheme; the pipeline applies the model's
    postprocess rule as mcrf predict does (it used to report the strict spans of the raw path, dropping the
    orphan I- entities that mcrf predict's default rule keeps), and mcrf convert carries the rule."""
    from types import SimpleNamespace

    from transformers import AutoTokenizer, pipeline

    from mcrf.cli.app import main
    from mcrf.hf.convert import convert

    model = MaskedCRFForTokenClassification.from_pretrained(str(hf_dir))
    model.config.mode, model.config.postprocess = "crf", rule
    index = model.config.label2id
    with torch.no_grad():  # make orphan I- tags likely: the unmasked CRF may now start or follow O with I-PER
        model.crf.start_transitions[index["I-PER"]] += 4.0
        model.crf.transitions[index["O"], index["I-PER"]] += 4.0
    model.save_pretrained(str(tmp_path / "hf"))
    (tmp_path / "hf" / "tokenizer.json").write_bytes((hf_dir / "tokenizer.json").read_bytes())
    (tmp_path / "hf" / "tokenizer_config.json").write_bytes((hf_dir / "tokenizer_config.json").read_bytes())
    converted = convert(tmp_path / "hf", tmp_path / "mcrf")
    assert json.loads((converted / "config.json").read_text())["postprocess"] == rule
    source = tmp_path / "input.txt"
    source.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    assert main(["predict", str(source), "--model", str(converted), "--format", "jsonl", "--input-format",
                 "text"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    crf = MaskedCRFForTokenClassification.from_pretrained(str(tmp_path / "hf"))
    texts = [SimpleNamespace(tokens=text.split()) for text in TEXTS[:3]]
    raw = _hf_tags(crf, AutoTokenizer.from_pretrained(str(hf_dir)), texts)
    assert any(not is_legal(tags, "BIO") for tags in raw)  # the raw paths do break the scheme
    tagger = pipeline("mcrf-token-classification", model=str(tmp_path / "hf"))
    found = tagger(TEXTS)
    assert [[(e["entity_group"], e["start"], e["end"]) for e in ents] for ents in found] == \
        [[(s["label"], s["char_start"], s["char_end"]) for s in r["spans"]] for r in records]
    for ents, record in zip(found, records):
        assert [e["score"] for e in ents] == pytest.approx([s["confidence"] for s in record["spans"]], abs=1e-4)
    words = tagger(TEXTS, aggregation_strategy="none")
    assert [[w["entity"] for w in ws] for ws in words] == [r["tags"] for r in records]


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_attn_implementation_reaches_the_backbone(hf_dir, tokenizer, attention):
    """from_pretrained(folder, attn_implementation=...) used to raise for "sdpa" (the head declared no support)
    and to leave the backbone on its default for "eager"."""
    model = MaskedCRFForTokenClassification.from_pretrained(str(hf_dir), attn_implementation=attention).eval()
    assert model.encoder.config._attn_implementation == attention
    reference = MaskedCRFForTokenClassification.from_pretrained(str(hf_dir)).eval()
    encoding = tokenizer([["john", "visited", "paris"]], is_split_into_words=True, return_tensors="pt")
    mask = mcrf.hf.word_mask(encoding)
    with torch.no_grad():
        a = model(**encoding, word_mask=mask, output_marginals=True).marginals
        b = reference(**encoding, word_mask=mask, output_marginals=True).marginals
    assert torch.allclose(a, b, atol=1e-5)
