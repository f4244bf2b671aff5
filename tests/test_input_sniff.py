"""``mcrf predict --input-format auto`` (the default, issue 10 item 4): CoNLL or text by a
conservative, documented rule (``mcrf.data.sniff``), the choice printed once on stderr."""

from __future__ import annotations

import io
import os
import threading

import pytest

from mcrf.cli.app import main
from mcrf.data.sniff import SNIFF_BYTES, sniff_input, sniff_lines
from mcrf.predict.stream import PredictConfig, read_input

CONLL = "-DOCSTART- O\n\nEU B-ORG\nrejects O\nGerman B-MISC\ncall O\n\nPeter B-PER\nBlackburn I-PER\n"
CONLL03 = "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\n"


def _verdict(text: str) -> tuple[str, str]:
    got = sniff_lines(enumerate(text.split("\n"), 1))
    return got.format, got.reason


@pytest.mark.parametrize("text, expected, reason", [
    (CONLL, "conll", "every line has 2 columns and the last holds BIO tags"),
    (CONLL03, "conll", "every line has 4 columns and the last holds BIO tags"),
    ("中 B-NAME\n国 E-NAME\n人 O\n", "conll", "BIOES tags"),
    ("Anna Weber flew to Berlin .\nJohn met Maria .\n", "text", "'.' (line 1, last column) is not a tag"),
    # ambiguous on purpose: every line two words ending in O (or a bare prefix) stays text
    ("Plan O\nBig O\n\nGame O\n", "text", "no entity tag (only O or bare prefixes)"),
    ("Yes I\nThen I\nPlan B\n", "text", "no entity tag"),
    ("EU B-ORG\nrejects O\nnow it is O\n", "text", "line 3 has 4 columns, line 1 has 2"),
    ("EU B-ORG\nrejects\n", "text", "line 2 has a single column"),
    ("a B-X\nb L-X\nc M-X\n", "text", "fit no single scheme"),
    ("", "text", "no token lines"),
    ("\n\n-DOCSTART- O\n", "text", "no token lines"),
])
def test_the_rule(text, expected, reason):
    got, why = _verdict(text)
    assert got == expected and reason in why, why


def test_a_conll_file_is_read_as_blocks_and_a_text_file_as_lines(tmp_path):
    conll, text = tmp_path / "in.conll", tmp_path / "in.txt"
    conll.write_text(CONLL)
    text.write_text("EU rejects German call .\n\nPeter Blackburn\n")
    assert [s.tokens for s in read_input(conll)] == [("EU", "rejects", "German", "call"), ("Peter", "Blackburn")]
    assert [s.tokens for s in read_input(text)] == [("EU", "rejects", "German", "call", "."), (), ("Peter", "Blackburn")]
    assert PredictConfig().input_format == "auto"


def test_a_stream_is_sniffed_on_its_prefix_and_replayed_whole():
    sentences = [[f"w{i}_{j} {'B-PER' if j == 0 else 'O'}" for j in range(5)] for i in range(4000)]
    data = "\n\n".join("\n".join(s) for s in sentences).encode()
    assert len(data) > 3 * SNIFF_BYTES
    got = list(read_input(io.BytesIO(data)))
    assert len(got) == 4000 and got[-1].tokens == tuple(f"w3999_{j}" for j in range(5))
    assert got[1234].source == f"<stream>:{1234 * 6 + 1}"
    readable, verdict = sniff_input(io.BytesIO(data), "utf-8")
    assert verdict.format == "conll" and f"in its first {SNIFF_BYTES:,} bytes" in verdict.reason
    assert readable.read() == data  # nothing lost


def test_utf16_and_a_named_pipe(tmp_path):
    utf16 = tmp_path / "in16.conll"
    utf16.write_bytes(CONLL.encode("utf-16"))
    assert len(list(read_input(utf16, encoding="utf-16"))) == 2
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(CONLL.encode()))
    writer.start()
    try:
        assert [len(s.tokens) for s in read_input(str(fifo))] == [4, 2]
    finally:
        writer.join(timeout=10)


def test_cli_prints_the_choice_once_and_quiet_silences_it(sample_model, tmp_path, capsys):
    conll = tmp_path / "news.conll"
    conll.write_text(CONLL)
    assert main(["predict", str(conll), "--model", str(sample_model), "--format", "conll"]) == 0
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if "input (" in line]
    assert lines == [f"{conll}: reading conll input (every line has 2 columns and the last holds BIO tags); "
                     "pass --input-format to choose"]
    blocks = [block.split("\n") for block in out.strip("\n").split("\n\n")]
    assert [[line.split("\t")[0] for line in block] for block in blocks] == [["EU", "rejects", "German", "call"],
                                                                              ["Peter", "Blackburn"]]
    assert main(["predict", str(conll), "--model", str(sample_model), "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["predict", str(conll), "--model", str(sample_model), "--input-format", "text"]) == 0
    assert "reading" not in capsys.readouterr().err  # an explicit format is not announced
