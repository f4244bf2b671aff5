"""Raw text for prediction: word tokenization with offsets, streaming lines, pre-tokenized input."""

from __future__ import annotations

import io
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcrf.data import text as text_module
from mcrf.data.text import read_pretokenized, read_text_lines, tokenize_line


def test_tokenize_line_punctuation_and_offsets():
    line = "Dr. Smith (IBM) paid $3,000 -- really!"
    s = tokenize_line(line)
    assert s.tokens == ("Dr", ".", "Smith", "(", "IBM", ")", "paid", "$", "3,000", "-", "-", "really", "!")
    assert all(line[a:b] == tok for tok, (a, b) in zip(s.tokens, s.offsets))
    assert s.text == line and s.tags is None


@pytest.mark.parametrize("line, tokens", [
    # internal . , - ' between word characters stay in the word; at the edges they are tokens
    ("3.5 1,200 e-mail don't O'Neil’s", ("3.5", "1,200", "e-mail", "don't", "O'Neil’s")),
    ("'quoted', -5, end. 2024.", ("'", "quoted", "'", ",", "-", "5", ",", "end", ".", "2024", ".")),
    # single-letter abbreviations keep their final dot; other words do not
    ("the U.S. and U.K., e.g. Mr. Smith", ("the", "U.S.", "and", "U.K.", ",", "e.g.", "Mr", ".", "Smith")),
    ("in the U.S.", ("in", "the", "U.S.")),
    # combining marks stay inside the word (decomposed Latin, Devanagari, Thai vowels, Hangul jamo)
    (unicodedata.normalize("NFD", "José Müller"), (unicodedata.normalize("NFD", "José"),
                                                   unicodedata.normalize("NFD", "Müller"))),
    ("हिन्दी भाषा", ("हिन्दी", "भाषा")),
    ("می\u200cخواهم", ("می\u200cخواهم",)),
    ("か\u3099な", ("か\u3099", "な")),  # a kana with a combining voicing mark is one token
])
def test_tokenize_line_words_keep_marks_and_inner_punctuation(line, tokens):
    s = tokenize_line(line)
    assert s.tokens == tokens
    assert all(line[a:b] == tok for tok, (a, b) in zip(s.tokens, s.offsets))


def test_tokenize_line_cjk_each_character_and_mixed_scripts():
    s = tokenize_line("我在北京工作 at Google东京")
    assert s.tokens == ("我", "在", "北", "京", "工", "作", "at", "Google", "东", "京")
    assert tokenize_line("  ").tokens == () and tokenize_line("").offsets == ()


_PIECES = st.sampled_from(["U", "S", "3", "5", "é", "\u0301", "\u093f", "ह", "我", ".", ",", "-", "'", "’", " ",
                           "\t", "(", "\u200d", "_"])


@settings(max_examples=80, deadline=None)
@given(st.one_of(st.text(max_size=40), st.lists(_PIECES, max_size=30).map("".join)))
def test_offsets_cover_every_visible_character(line):
    s = tokenize_line(line)
    covered = set()
    last_end = 0
    for tok, (a, b) in zip(s.tokens, s.offsets):
        assert line[a:b] == tok and a >= last_end and b > a
        covered.update(range(a, b))
        last_end = b
        assert not any(char.isspace() for char in tok)
    assert all(line[i].isspace() for i in range(len(line)) if i not in covered)
    assert tokenize_line(" ".join(s.tokens)).tokens == s.tokens  # re-tokenizing the tokens is stable


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(["U", "s", "3", "_", ".", ",", "-", "'", " ", "\t", "\x1c", "(", "$", "ab"]),
                max_size=30).map("".join))
def test_ascii_fast_path_agrees_with_the_character_scan(line):
    assert list(text_module._ascii_spans(line)) == list(text_module._scanned_spans(line))


def test_read_text_lines_keeps_empty_lines_aligned(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes("John lives in Paris.\r\n\r\nMary works.\n".encode())
    sents = list(read_text_lines(path))
    assert [s.tokens for s in sents] == [("John", "lives", "in", "Paris", "."), (), ("Mary", "works", ".")]
    assert sents[2].source == f"{path}:3" and sents[0].text == "John lives in Paris."


def test_read_text_lines_from_stream_and_errors():
    sents = list(read_text_lines(io.StringIO("a b\n\nc\n")))
    assert [s.tokens for s in sents] == [("a", "b"), (), ("c",)]
    binary = list(read_text_lines(io.BytesIO("a b\n\nč\n".encode("utf-16")), encoding="utf-16"))
    assert [s.tokens for s in binary] == [("a", "b"), (), ("č",)]  # one reader for both kinds of stream
    with pytest.raises(TypeError, match="expected a path, a binary stream or a text stream"):
        list(read_text_lines(42))


def test_read_pretokenized_whitespace_tokens_with_offsets():
    sents = list(read_pretokenized(io.StringIO("New-York 's  Mayor\n\n")))
    assert sents[0].tokens == ("New-York", "'s", "Mayor")
    assert sents[0].offsets == ((0, 8), (9, 11), (13, 18))
    assert sents[1].tokens == ()
