"""Raw text for prediction: word tokenization with offsets, streaming lines, pre-tokenized input."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcrf.data.text import read_pretokenized, read_text_lines, tokenize_line


def test_tokenize_line_punctuation_and_offsets():
    line = "Dr. Smith (IBM) paid $3,000 -- really!"
    s = tokenize_line(line)
    assert s.tokens == ("Dr", ".", "Smith", "(", "IBM", ")", "paid", "$", "3", ",", "000", "-", "-", "really", "!")
    assert all(line[a:b] == tok for tok, (a, b) in zip(s.tokens, s.offsets))
    assert s.text == line and s.tags is None


def test_tokenize_line_cjk_each_character_and_mixed_scripts():
    s = tokenize_line("我在北京工作 at Google东京")
    assert s.tokens == ("我", "在", "北", "京", "工", "作", "at", "Google", "东", "京")
    assert tokenize_line("  ").tokens == () and tokenize_line("").offsets == ()


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=40))
def test_offsets_cover_every_visible_character(line):
    s = tokenize_line(line)
    covered = set()
    last_end = 0
    for tok, (a, b) in zip(s.tokens, s.offsets):
        assert line[a:b] == tok and a >= last_end and b > a
        covered.update(range(a, b))
        last_end = b
    assert all(line[i].isspace() for i in range(len(line)) if i not in covered)


def test_read_text_lines_keeps_empty_lines_aligned(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes("John lives in Paris.\r\n\r\nMary works.\n".encode())
    sents = list(read_text_lines(path))
    assert [s.tokens for s in sents] == [("John", "lives", "in", "Paris", "."), (), ("Mary", "works", ".")]
    assert sents[2].source == f"{path}:3" and sents[0].text == "John lives in Paris."


def test_read_text_lines_from_stream_and_errors():
    sents = list(read_text_lines(io.StringIO("a b\n\nc\n")))
    assert [s.tokens for s in sents] == [("a", "b"), (), ("c",)]
    with pytest.raises(TypeError, match="expected a text stream, got bytes"):
        list(read_text_lines(io.BytesIO(b"a b\n")))
    with pytest.raises(TypeError, match="expected a path or a text stream"):
        list(read_text_lines(42))


def test_read_pretokenized_whitespace_tokens_with_offsets():
    sents = list(read_pretokenized(io.StringIO("New-York 's  Mayor\n\n")))
    assert sents[0].tokens == ("New-York", "'s", "Mayor")
    assert sents[0].offsets == ((0, 8), (9, 11), (13, 18))
    assert sents[1].tokens == ()
