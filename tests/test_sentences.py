"""Sentence-level path: `extract --sentences`, sentence encoding (planted truth, no leakage), bad inputs, CLI chain."""

import re

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from _models import D_MODEL, N_LAYERS, tiny_checkpoint, tiny_tokenizer_dir  # noqa: F401
from brainphase import cli
from brainphase.encoding import features as F
from brainphase.encoding.ridge import RidgeCV, nested_cv_predict
from brainphase.encoding.sentences import sentence_fold_labels
from brainphase.errors import InputError
from brainphase.io import atomic_h5, provenance, read_attrs, read_strings, string_array
from brainphase.stimuli import sentence_run_names, sentence_words

#: sentences with multi-token, accented and punctuated words; the third repeats the first's
#: start, so a context leaking across sentences would change its vectors
SENTENCES = [
    "The quick brown fox jumps.",
    "Café crème, naïve façade!",
    "The quick brown fox sleeps all day.",
    "Neurons respond to words.",
]


# ---------------------------------------------------------------------------- extract --sentences
def test_sentence_words_table():
    table = sentence_words(["A b.", "  Cc   dd ee "])
    assert table["run"].tolist() == ["s0000", "s0000", "s0001", "s0001", "s0001"]
    assert table["word"].tolist() == ["A", "b.", "Cc", "dd", "ee"]
    assert table["onset"].tolist() == [0.0, 1.0, 0.0, 1.0, 2.0]
    assert (table["offset"] - table["onset"] == 1.0).all()
    assert sentence_run_names(10001)[-1] == "s10000" and sentence_run_names(3) == ["s0000", "s0001", "s0002"]
    with pytest.raises(InputError, match="sentence 1 is blank"):
        sentence_words(["ok", "   "])


def test_extract_sentences_equals_each_sentence_alone(tiny_checkpoint, tmp_path):
    from brainphase.models.checkpoints import load_checkpoint

    path = tmp_path / "sentences.txt"
    path.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    out = tmp_path / "act.h5"
    assert cli.main(["extract", "--model", str(tiny_checkpoint), "--sentences", str(path), "--out", str(out),
                     "--device", "cpu", "--pooling", "last", "--batch-size", "3"]) == 0
    checkpoint = load_checkpoint(tiny_checkpoint, device="cpu")
    tokenize = lambda text: checkpoint.tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    expected, runs, words = [], [], []
    for number, sentence in enumerate(SENTENCES):
        ids = tokenize(sentence)
        with torch.no_grad():  # one causal pass over the sentence alone
            hidden = torch.stack(checkpoint.model(torch.tensor([ids]), output_hidden_states=True).hidden_states)[:, 0]
        end = 0
        for word in sentence.split(" "):
            end = sentence.index(word, end) + len(word)
            expected.append(hidden[:, len(tokenize(sentence[:end])) - 1])  # the word's last token
            runs.append(f"s{number:04d}")
            words.append(word)
    expected = torch.stack(expected, dim=1).numpy()
    with h5py.File(out, "r") as h5:
        stored = np.stack([h5[f"layer_{i}"][()] for i in range(N_LAYERS + 1)])
        assert read_strings(h5["words/run"]) == runs and read_strings(h5["words/word"]) == words
        np.testing.assert_array_equal(h5["words/onset"][:5], [0, 1, 2, 3, 4])  # ordinal positions
        np.testing.assert_array_equal(h5["words/offset"][:2], [1, 2])
    assert stored.shape == (N_LAYERS + 1, len(words), D_MODEL)
    np.testing.assert_allclose(stored, expected, rtol=1e-4, atol=1e-5)
    # sentence 2 starts like sentence 0 and, in isolation, gets identical vectors for those words
    np.testing.assert_allclose(stored[:, 9:13], stored[:, 0:4], rtol=1e-5, atol=1e-6)
    attrs = read_attrs(out)
    assert attrs["stimulus_kind"] == "sentences" and str(path) in attrs["input_sha256"]
    with pytest.raises(SystemExit):  # --stimulus and --sentences are exclusive
        cli.main(["extract", "--model", "m", "--sentences", str(path), "--stimulus", str(path), "--out", str(out)])


# ---------------------------------------------------------------------------- planted encoding data
N_SENTENCES, N_TARGETS, N_SIGNAL, N_LAYERS_PLANTED, D_PLANTED = 160, 14, 7, 3, 6
SUBJECTS = ["sub-02", "sub-01"]


def write_planted(tmp_path, response_texts=None, stimulus_kind="sentences", seed=0):
    """Activations (3 layers, 6 dims) of 160 sentences of 3-9 words, and responses in which
    layer 1's mean-pooled sentence vectors drive the first 7 of 14 targets (pure noise on the rest)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 10, N_SENTENCES)
    texts = [" ".join(f"w{n}_{k}" for k in range(length)) for n, length in enumerate(lengths)]
    table = sentence_words(texts)
    # features of very different scales: ridge without standardization would penalise them unevenly
    scales = np.array([0.05, 1.0, 20.0, 1.0, 3.0, 0.5])
    layers = [(rng.standard_normal((len(table), D_PLANTED)) * scales).astype(np.float32) for _ in range(N_LAYERS_PLANTED)]
    act = tmp_path / "act.h5"
    with atomic_h5(act, provenance("extract", {}, [], stimulus_kind=stimulus_kind, model_id="planted", step=64)) as h5:
        for i, layer in enumerate(layers):
            h5.create_dataset(f"layer_{i}", data=layer)
        for key in ("run", "word"):
            h5.create_dataset(f"words/{key}", data=string_array(table[key]))
        for key in ("word_index", "onset", "offset"):
            h5.create_dataset(f"words/{key}", data=table[key].to_numpy())
    _, pooled = F.sentence_features(layers[1], table["run"].to_numpy(), "mean")
    pooled = (pooled - pooled.mean(0)) / pooled.std(0)
    weights = rng.standard_normal((D_PLANTED, N_TARGETS))
    weights[:, N_SIGNAL:] = 0
    resp = tmp_path / "responses.h5"
    attrs = provenance("load-fmri", {}, [], tr=np.nan, dataset_kind="sentences", runs=[], subjects=SUBJECTS)
    with atomic_h5(resp, attrs) as h5:
        h5.create_dataset("sentences/text", data=string_array(texts if response_texts is None else response_texts(texts)))
        for sub in SUBJECTS:
            noise = rng.standard_normal((N_SENTENCES, N_TARGETS))
            h5.create_dataset(f"subjects/{sub}/sentences/responses", data=(pooled @ weights * 0.6 + noise).astype(np.float32))
        h5.create_dataset("subjects/sub-01/noise_ceiling", data=np.full(N_TARGETS, 0.8, dtype=np.float32))
    return act, resp


def encode_args(act, resp, out, *extra):
    return ["encode", "--activations", str(act), "--responses", str(resp), "--out", str(out),
            "--alphas", "0.1", "1", "10", "100", "1000", *extra]


@pytest.fixture(scope="module")
def planted_scores(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sentences")
    act, resp = write_planted(tmp)
    out = tmp / "scores.h5"
    assert cli.main(encode_args(act, resp, out)) == 0
    return out


def test_planted_layer_and_targets_are_recovered(planted_scores):
    with h5py.File(planted_scores, "r") as h5:
        r, r2 = h5["r"][()], h5["r2"][()]
        assert r.shape == (N_LAYERS_PLANTED, len(SUBJECTS), N_TARGETS) and np.isfinite(r).all()
        assert (r[1, :, :N_SIGNAL] > 0.6).all()
        # noise targets and unrelated layers: r ~ 0 (fold-mean r: SE about 0.08 per target here)
        assert np.abs(r[1, :, N_SIGNAL:]).max() < 0.3 and abs(r[1, :, N_SIGNAL:].mean()) < 0.08
        assert abs(r[[0, 2]].mean()) < 0.05
        assert int(np.argmax(r[:, :, :N_SIGNAL].mean(axis=(1, 2)))) == 1  # the planted layer is the best layer
        assert (r2[1, :, :N_SIGNAL] > 0.3).all() and (r2[1, :, N_SIGNAL:] < 0.05).all()


def test_sentence_scores_layout(planted_scores):
    with h5py.File(planted_scores, "r") as h5:
        shape = (N_LAYERS_PLANTED, len(SUBJECTS), N_TARGETS)
        for key in ("r", "r2", "alpha", "r_normalized"):
            assert h5[key].shape == shape, key
        assert "p_value" not in h5
        assert h5["roi_mean_r"].shape == (N_LAYERS_PLANTED, len(SUBJECTS), 0)
        assert read_strings(h5["runs"]) == [] and read_strings(h5["roi_names"]) == []
        assert read_strings(h5["subjects"]) == sorted(SUBJECTS)
        # default without passages: shuffled folds, exactly scikit-learn's KFold(5, shuffle=True, random_state=0)
        from sklearn.model_selection import KFold

        expected = np.empty(N_SENTENCES, dtype=np.int64)
        for k, (_, test) in enumerate(KFold(5, shuffle=True, random_state=0).split(np.zeros(N_SENTENCES))):
            expected[test] = k
        np.testing.assert_array_equal(h5["sentence_folds"][()], expected)
        # r_normalized = r / 0.8 for sub-01 (index 0), NaN for sub-02 without a ceiling
        np.testing.assert_allclose(h5["r_normalized"][:, 0], h5["r"][:, 0] / 0.8, rtol=1e-6)
        assert np.isnan(h5["r_normalized"][:, 1]).all()
    attrs = read_attrs(planted_scores)
    assert (attrs["stimulus_kind"], attrs["sentence_pooling"], attrs["fold_grouping"]) == ("sentences", "mean", "shuffled")
    assert (attrs["r_convention"], attrs["cv_seed"]) == ("fold_mean", 0)
    assert (attrs["n_sentences"], attrs["sentence_folds"], attrs["model_id"], attrs["step"]) == (N_SENTENCES, 5, "planted", 64)
    assert np.isnan(attrs["tr"])


# ---------------------------------------------------------------------------- no leakage
def _sklearn_nested(X, Y, folds, alphas):
    """Reference: per outer fold, GridSearchCV over Pipeline(StandardScaler, Ridge), inner leave-one-fold-out."""
    from sklearn.model_selection import GridSearchCV, LeaveOneGroupOut
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    predictions = np.empty_like(Y)
    for fold in np.unique(folds):
        test = folds == fold
        for j in range(Y.shape[1]):
            search = GridSearchCV(make_pipeline(StandardScaler(), Ridge()), {"ridge__alpha": alphas},
                                  cv=LeaveOneGroupOut(), scoring="r2")
            search.fit(X[~test], Y[~test, j], groups=folds[~test])
            predictions[test, j] = search.predict(X[test])
    return predictions


def test_standardization_uses_training_folds_only():
    """Held-out predictions equal scikit-learn's per-fold StandardScaler + Ridge (inner CV too);
    the held-out fold has shifted and 6x wider features, so any use of its statistics shows."""
    rng = np.random.default_rng(3)
    n, d = 45, 4
    X = rng.standard_normal((n, d)) * [1.0, 10.0, 0.1, 3.0]
    folds, _ = sentence_fold_labels(n, 3, scheme="contiguous")
    X[folds == 2] = X[folds == 2] * 6.0 + 4.0
    Y = X @ rng.standard_normal((d, 3)) + rng.standard_normal((n, 3)) * 5
    alphas = [0.3, 3.0, 30.0, 300.0]
    reference = _sklearn_nested(X, Y, folds, alphas)
    estimator = RidgeCV(alphas=alphas, standardize=True, dtype="float64")
    predictions, _, _ = nested_cv_predict(estimator, X, Y, folds)
    np.testing.assert_allclose(predictions, reference, rtol=1e-7, atol=1e-8)
    # a leaky variant (z-scoring with the statistics of all sentences) gives other predictions
    X_leaky = (X - X.mean(0)) / X.std(0)
    leaky, _, _ = nested_cv_predict(RidgeCV(alphas=alphas, dtype="float64"), X_leaky, Y, folds)
    assert np.abs(leaky - reference).max() > 1e-2


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_ridge_standardize_matches_sklearn_pipeline(backend):
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(4)
    X = rng.standard_normal((37, 5)) * [2.0, 0.2, 7.0, 1.0, 1.0] + 3.0
    X[:, 3] = 1.5  # constant column: scale 1, as StandardScaler
    Y = X @ rng.standard_normal((5, 2)) + rng.standard_normal((37, 2))
    groups = np.repeat(np.arange(3), [12, 12, 13])
    model = RidgeCV(alphas=[7.0], standardize=True, backend=backend, device="cpu", dtype="float64").fit(X, Y, groups)
    pipe = make_pipeline(StandardScaler(), Ridge(alpha=7.0)).fit(X, Y)
    X_new = rng.standard_normal((6, 5))
    np.testing.assert_allclose(model.predict(X_new), pipe.predict(X_new), rtol=1e-8, atol=1e-8)
    with pytest.raises(InputError, match="fit_intercept"):
        RidgeCV(alphas=[1.0], standardize=True, fit_intercept=False).fit(X, Y, groups)


def test_fold_mean_scores_match_scipy():
    from scipy.stats import pearsonr
    from sklearn.metrics import r2_score

    from brainphase.encoding.sentences import fold_mean_scores

    rng = np.random.default_rng(6)
    y = rng.standard_normal((23, 3))
    pred = 0.5 * y + rng.standard_normal((23, 3)) + 0.3
    folds = np.array([0] * 8 + [1] * 7 + [2] * 8)
    r, r2 = fold_mean_scores(y, pred, folds)
    parts = [folds == k for k in range(3)]
    np.testing.assert_allclose(r, [np.mean([pearsonr(y[m, j], pred[m, j])[0] for m in parts]) for j in range(3)])
    np.testing.assert_allclose(r2, np.mean([r2_score(y[m], pred[m], multioutput="raw_values") for m in parts], axis=0))


def test_scores_by_fold_match_the_column_scores_of_each_fold_and_of_all_rows(caplog):
    from brainphase.encoding.scoring import pearson_columns, r2_columns, scores_by_fold

    rng = np.random.default_rng(7)
    y = (rng.standard_normal((31, 4)) + 50.0).astype(np.float32)  # large means: centring must not lose digits
    pred = (0.4 * y + rng.standard_normal((31, 4)) + 20.0).astype(np.float32)
    y[:, 3], pred[:, 2] = 2.5, 0.1  # a constant target and a constant prediction: NaN, never a number
    folds = np.array([2] * 9 + [0] * 12 + [5] * 10)
    rng.shuffle(folds)  # folds need not be contiguous
    scores = scores_by_fold(y, pred, folds)
    parts = [folds == k for k in (0, 2, 5)]
    with caplog.at_level("WARNING"):
        expected_fold_r = np.mean([pearson_columns(y[m], pred[m]) for m in parts], axis=0)
        expected_fold_r2 = np.mean([r2_columns(y[m], pred[m]) for m in parts], axis=0)
    np.testing.assert_allclose(scores["r_fold_mean"], expected_fold_r, rtol=1e-10)
    np.testing.assert_allclose(scores["r2_fold_mean"], expected_fold_r2, rtol=1e-10)
    np.testing.assert_allclose(scores["r_concatenated"], pearson_columns(y, pred), rtol=1e-10)
    np.testing.assert_allclose(scores["r2_concatenated"], r2_columns(y, pred), rtol=1e-10)
    assert np.isnan(scores["r_concatenated"][2:]).all() and np.isnan(scores["r2_concatenated"][3])
    assert np.isfinite(scores["r2_concatenated"][:3]).all()


def test_fold_labels():
    from sklearn.model_selection import KFold

    labels, grouping = sentence_fold_labels(11, 3, scheme="contiguous")
    assert grouping == "contiguous" and labels.tolist() == [0] * 4 + [1] * 4 + [2] * 3
    labels, grouping = sentence_fold_labels(11, 3, seed=4)  # auto without passages: shuffled
    kfold = [test.tolist() for _, test in KFold(3, shuffle=True, random_state=4).split(np.zeros(11))]
    assert grouping == "shuffled" and [np.flatnonzero(labels == k).tolist() for k in range(3)] == kfold
    assert not np.array_equal(labels, sentence_fold_labels(11, 3, seed=5)[0])
    passages = ["b", "b", "a", "a", "a", "c", "d", "d", "b"]  # passage b also at the end
    labels, grouping = sentence_fold_labels(9, 3, passages)
    assert grouping == "passage" and labels.tolist() == [0, 0, 0, 0, 0, 1, 2, 2, 0]
    assert sentence_fold_labels(9, 3, passages, scheme="shuffled")[1] == "shuffled"
    with pytest.raises(InputError, match="more folds than the 4 passages"):
        sentence_fold_labels(9, 5, passages)
    with pytest.raises(InputError, match="at least 3"):
        sentence_fold_labels(9, 2)
    with pytest.raises(InputError, match="no /sentences/passage"):
        sentence_fold_labels(9, 3, scheme="passage")


# ---------------------------------------------------------------------------- bad inputs
def _renamed(index):
    def edit(texts):
        return texts[:index] + ["a different sentence"] + texts[index + 1:]
    return edit


@pytest.mark.parametrize(
    "response_texts, stimulus_kind, message",
    [
        (_renamed(7), "sentences", r"first mismatch at sentence 7: activations 'w7_0 .*' vs responses 'a different sentence'"),
        (lambda texts: texts + ["one more"], "sentences", r"\(160\) and .* \(161\) differ .* at sentence 160"),
        (lambda texts: texts[:-1], "sentences", r"\(160\) and .* \(159\) differ"),
        (None, "words", r"timed word stimulus .* `brainphase extract --sentences"),
        (None, "sentences", r"--permutations is not available for sentence-level"),
    ],
)
def test_mismatched_sentences_fail_without_output(tmp_path, capsys, response_texts, stimulus_kind, message):
    act, resp = write_planted(tmp_path, response_texts, stimulus_kind)
    out = tmp_path / "scores.h5"
    extra = ["--permutations", "9"] if "permutations" in message else []
    assert cli.main(encode_args(act, resp, out, "--layers", "1", *extra)) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not out.exists() and not list(tmp_path.glob(".scores.h5*"))


def test_whitespace_differences_are_not_mismatches(tmp_path):
    act, resp = write_planted(tmp_path, lambda texts: [f"  {t.replace(' ', '   ')} " for t in texts])
    assert cli.main(encode_args(act, resp, tmp_path / "scores.h5", "--layers", "1", "--sentence-folds", "4")) == 0


# ---------------------------------------------------------------------------- CLI chain
def test_cli_chain_load_extract_encode(tiny_checkpoint, tmp_path):
    rng = np.random.default_rng(5)
    base = ["The fox jumps.", "A dog sleeps here.", "Café crème is hot.", "Neurons respond to words.",
            "The story goes on.", "Rivers cross the mountains."]
    texts = [f"{base[i % len(base)]} Item {i}." for i in range(24)]
    root = tmp_path / "dataset"
    root.mkdir()
    passages = [f"p{i // 4}" for i in range(24)]
    pd.DataFrame({"text": [t.replace(" ", "  ", 1) for t in texts], "passage": passages}).to_csv(
        root / "sentences.tsv", sep="\t", index=False)
    for sub in ("01", "02", "03"):
        np.save(root / f"sub-{sub}_sentences.npy", rng.standard_normal((24, 5)))
    resp = tmp_path / "responses.h5"
    assert cli.main(["load-fmri", "--kind", "sentences", "--root", str(root), "--out", str(resp)]) == 0
    with h5py.File(resp, "r") as h5:
        assert read_strings(h5["sentences/passage"]) == passages
    act = tmp_path / "act.h5"
    # the workflow's path: the sentence list is read from responses.h5 itself
    assert cli.main(["extract", "--model", str(tiny_checkpoint), "--sentences", str(resp), "--out", str(act),
                     "--device", "cpu", "--pooling", "mean"]) == 0
    out = tmp_path / "scores.h5"
    assert cli.main(encode_args(act, resp, out, "--sentence-folds", "3", "--sentence-pooling", "last")) == 0
    with h5py.File(out, "r") as h5:
        assert h5["r"].shape == (N_LAYERS + 1, 3, 5) and "r_normalized" in h5
        folds = h5["sentence_folds"][()]
    assert folds.tolist() == [0] * 8 + [1] * 8 + [2] * 8  # 6 passages of 4 sentences, 2 passages per fold
    attrs = read_attrs(out)
    assert (attrs["fold_grouping"], attrs["sentence_pooling"], attrs["stimulus_kind"]) == ("passage", "last", "sentences")


def test_blank_passage_label_is_refused(tmp_path, capsys):
    pd.DataFrame({"text": ["A b.", "C d.", "E f."], "passage": ["p0", " ", "p1"]}).to_csv(
        tmp_path / "sentences.tsv", sep="\t", index=False)
    for sub in ("01", "02"):
        np.save(tmp_path / f"sub-{sub}_sentences.npy", np.random.default_rng(0).standard_normal((3, 2)))
    out = tmp_path / "r.h5"
    assert cli.main(["load-fmri", "--kind", "sentences", "--root", str(tmp_path), "--out", str(out)]) == 2
    assert "column 'passage' is blank in row 3" in capsys.readouterr().err
    assert not out.exists()


def test_identical_sentence_features_give_nan_and_a_warning(tmp_path, caplog):
    act, resp = write_planted(tmp_path)
    with h5py.File(act, "a") as h5:
        h5["layer_2"][...] = 0.5  # every word, hence every sentence, has the same vector
    out = tmp_path / "scores.h5"
    assert cli.main(encode_args(act, resp, out, "--layers", "1", "2", "--sentence-folds", "4")) == 0
    with h5py.File(out, "r") as h5:
        assert np.isnan(h5["r"][1]).all() and np.isfinite(h5["r"][0]).all()  # undefined, never 0
    assert "layer 2: the mean-pooled features are identical for every sentence" in caplog.text


def test_sentences_from_time_series_responses_are_refused(tmp_path):
    from brainphase.stimuli import read_sentences

    resp = tmp_path / "responses.h5"
    with atomic_h5(resp, provenance("load-fmri", {}, [], tr=2.0, dataset_kind="bids")) as h5:
        h5.create_dataset("subjects/sub-01/runs/1/bold", data=np.zeros((3, 2), np.float32))
    with pytest.raises(InputError, match="responses.h5: no /sentences/text"):
        read_sentences(resp)


def test_shuffled_cv_scores_match_an_independent_sklearn_pipeline(tmp_path):
    """brainphase encode (default shuffled folds, --cv-seed 3) against scikit-learn written
    from scratch: mean-pooled word vectors (pandas), KFold(5, shuffle=True, random_state=3),
    and per outer fold GridSearchCV(StandardScaler + Ridge, inner leave-one-fold-out). Both r
    conventions and the stored held-out predictions agree per target."""
    from scipy.stats import pearsonr
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GridSearchCV, KFold, LeaveOneGroupOut
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    act, resp = write_planted(tmp_path, seed=1)
    out = tmp_path / "scores.h5"
    assert cli.main(encode_args(act, resp, out, "--layers", "1", "--cv-seed", "3", "--save-predictions",
                                "--dtype", "float64")) == 0
    with h5py.File(act, "r") as h5:
        words = pd.DataFrame(h5["layer_1"][()]).assign(run=read_strings(h5["words/run"]))
    X = words.groupby("run", sort=False).mean().to_numpy()
    targets = [0, 1, 2, 3, 7, 8, 9]  # sub-01: 4 signal and 3 noise targets (the reference is slow)
    with h5py.File(resp, "r") as h5:
        Y = h5["subjects/sub-01/sentences/responses"][()][:, targets].astype(np.float64)
    folds = np.empty(N_SENTENCES, dtype=int)
    for k, (_, test) in enumerate(KFold(5, shuffle=True, random_state=3).split(X)):
        folds[test] = k
    predictions = np.empty_like(Y)
    for k in range(5):
        test = folds == k
        for j in range(Y.shape[1]):
            search = GridSearchCV(make_pipeline(StandardScaler(), Ridge()), {"ridge__alpha": [0.1, 1, 10, 100, 1000]},
                                  cv=LeaveOneGroupOut(), scoring="r2")
            search.fit(X[~test], Y[~test, j], groups=folds[~test])
            predictions[test, j] = search.predict(X[test])
    r_fold = np.array([np.mean([pearsonr(Y[folds == k, j], predictions[folds == k, j])[0] for k in range(5)])
                       for j in range(Y.shape[1])])
    r_all = np.array([pearsonr(Y[:, j], predictions[:, j])[0] for j in range(Y.shape[1])])
    with h5py.File(out, "r") as h5:
        np.testing.assert_array_equal(h5["sentence_folds"][()], folds)
        assert read_strings(h5["subjects"])[0] == "sub-01"
        np.testing.assert_allclose(h5["r"][0, 0, targets], r_fold, atol=1e-5)
        np.testing.assert_allclose(h5["r_fold_mean"][0, 0, targets], r_fold, atol=1e-5)
        np.testing.assert_allclose(h5["r_concatenated"][0, 0, targets], r_all, atol=1e-5)
        stored = h5["held_out/predictions"][0, 0][:, targets]  # (n_sentences, n_targets) of sub-01
        np.testing.assert_allclose(stored, predictions, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(h5["held_out/fold"][()], folds)
        np.testing.assert_allclose(h5["held_out/responses"][0][:, targets], Y, rtol=1e-6)
    assert (r_fold[:4] > 0.5).all() and np.abs(r_fold[4:]).max() < 0.3  # not a comparison of two failures
