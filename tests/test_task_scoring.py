"""Task scoring: lm-eval's encoding, batched log likelihoods and generation against unbatched
references (numpy, Hugging Face ``generate``), a planted model, and the per-item metrics."""

import itertools

import numpy as np
import pytest
import scipy.special
import torch

from _models import build_model, planted_model, train_tokenizer, train_wordpiece_tokenizer
from brainphase.errors import InputError
from brainphase.tasks import metrics, scoring

VOCAB = 97


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return train_tokenizer(tmp_path_factory.mktemp("tok"))


def random_requests(seed, n=11):
    rng = np.random.default_rng(seed)
    return [scoring.Request(tuple(rng.integers(0, VOCAB, rng.integers(1, 20))), tuple(rng.integers(0, VOCAB, rng.integers(1, 6))))
            for _ in range(n)]


def reference_loglik(model, request):
    """One unpadded forward pass; float64 log-softmax with scipy."""
    ids = torch.tensor(request.context + request.continuation)[None, :-1]
    with torch.no_grad():
        logits = model(ids).logits[0].double().numpy()
    n = len(request.continuation)
    log_probs = scipy.special.log_softmax(logits[-n:], axis=1)
    target = np.array(request.continuation)
    return log_probs[np.arange(n), target].sum(), log_probs.argmax(axis=1) == target


def test_encode_pair_follows_lm_eval(tokenizer):
    request = scoring.encode_pair(tokenizer, "The quick brown", " fox jumps", "t")
    whole = tokenizer("The quick brown fox jumps", add_special_tokens=False)["input_ids"]
    context = tokenizer("The quick brown", add_special_tokens=False)["input_ids"]
    assert request.context == tuple(context) and request.continuation == tuple(whole[len(context):])
    # trailing spaces of the context move to the continuation
    assert scoring.encode_pair(tokenizer, "The quick brown ", "fox jumps", "t") == request
    # an empty context is the end-of-text token (this tokenizer has no BOS)
    empty = scoring.encode_pair(tokenizer, "", " The fox", "t")
    assert empty.context == (tokenizer.eos_token_id,)
    assert empty.continuation == tuple(tokenizer(" The fox", add_special_tokens=False)["input_ids"])
    with pytest.raises(InputError, match="task x item 3: the answer '' gives no tokens"):
        scoring.encode_pair(tokenizer, "The quick", "", "task x item 3")


def test_unknown_token_names_task_and_item(tmp_path):
    wordpiece = train_wordpiece_tokenizer(tmp_path)
    with pytest.raises(InputError, match="task knowledge item 7: the tokenizer cannot encode"):
        scoring.encode_pair(wordpiece, "the fox", " ☃", "task knowledge item 7")


def test_batched_logliks_equal_one_at_a_time_numpy():
    model = build_model(VOCAB, seed=3)
    requests = random_requests(0)
    alone = scoring.loglikelihoods(model, requests, batch_size=1)
    for batch_size, pad_id in ((4, 0), (11, VOCAB - 1)):
        batched = scoring.loglikelihoods(model, requests, batch_size=batch_size, pad_id=pad_id)
        for result, single in zip(batched, alone):
            assert result.loglik == pytest.approx(single.loglik, abs=1e-5)
            assert (result.is_greedy, result.n_greedy, result.n_tokens) == (single.is_greedy, single.n_greedy, single.n_tokens)
    for request, result in zip(requests, alone):
        loglik, greedy = reference_loglik(model, request)
        assert result.loglik == pytest.approx(loglik, abs=1e-5)
        assert (result.is_greedy, result.n_greedy, result.n_tokens) == (greedy.all(), greedy.sum(), len(request.continuation))


def test_planted_model_gives_closed_form_logliks():
    """A model that always predicts token k with logit a (all others 0)."""
    k, a, j = 11, 2.5, 5
    model = planted_model(VOCAB, k, a, j)
    z = np.exp(a) + VOCAB - 1
    requests = [scoring.Request((3, 4), (k, k)), scoring.Request((5,), (k, 2, k)), scoring.Request((1, 2, 3), (7,))]
    results = scoring.loglikelihoods(model, requests, batch_size=2)
    expected = [2 * (a - np.log(z)), 2 * (a - np.log(z)) - np.log(z), -np.log(z)]
    assert [r.loglik for r in results] == pytest.approx(expected, abs=1e-5)
    assert [(r.is_greedy, r.n_greedy) for r in results] == [(True, 2), (False, 2), (False, 0)]


def test_batched_generation_equals_hugging_face_generate(tokenizer):
    model = build_model(len(tokenizer), seed=6)
    texts = ["The quick brown fox", "She said", "Neurons in the temporal lobe respond to", "A"]
    contexts = [tuple(scoring.encode(tokenizer, t)) for t in texts]
    batched = scoring.greedy_generate(model, tokenizer, contexts, until=(), max_gen_toks=6, batch_size=4)
    alone = [scoring.greedy_generate(model, tokenizer, [c], until=(), max_gen_toks=6, batch_size=1)[0] for c in contexts]
    assert batched == alone
    for context, text in zip(contexts, alone):
        with torch.no_grad():
            out = model.generate(torch.tensor([context]), max_new_tokens=6, do_sample=False, eos_token_id=tokenizer.eos_token_id,
                                 pad_token_id=tokenizer.eos_token_id)
        new = [t for t in out[0, len(context):].tolist() if t != tokenizer.eos_token_id]
        assert text == tokenizer.decode(new)
    # a stop string cuts the text before it
    stop = alone[0][len(alone[0]) // 2:][:1]
    if stop.strip():
        cut = scoring.greedy_generate(model, tokenizer, contexts[:1], until=(stop,), max_gen_toks=6, batch_size=1)[0]
        assert cut == alone[0].split(stop)[0]


def brute_edit_distance(a, b):
    if not a or not b:
        return len(a) + len(b)
    return min(brute_edit_distance(a[1:], b) + 1, brute_edit_distance(a, b[1:]) + 1,
               brute_edit_distance(a[1:], b[1:]) + (a[0] != b[0]))


def test_token_edit_distance():
    assert scoring.token_edit_distance("kitten", "sitting") == 3
    assert scoring.token_edit_distance([], [4, 5]) == 2
    rng = np.random.default_rng(0)
    for _ in range(30):
        a, b = list(rng.integers(0, 3, rng.integers(0, 6))), list(rng.integers(0, 3, rng.integers(0, 6)))
        assert scoring.token_edit_distance(a, b) == brute_edit_distance(a, b) == scoring.token_edit_distance(b, a)


def test_multiple_choice_metrics_closed_form():
    # item 0: choice 1 has the higher ll but choice 0 wins per character (acc_norm)
    logliks = [np.array([-6.0, -5.0]), np.array([-1.0, -2.0, -3.0])]
    lengths = [np.array([10.0, 4.0]), np.array([1.0, 1.0, 1.0])]
    values = metrics.multiple_choice_items(logliks, lengths, np.array([0, 0]))
    np.testing.assert_array_equal(values["acc"], [0, 1])
    np.testing.assert_array_equal(values["acc_norm"], [1, 1])
    np.testing.assert_allclose(values["logprob_correct"], [-6, -1])
    q0 = 1 / (1 + np.e)  # softmax mass on choice 0 of item 0
    q1 = np.exp([-1.0, -2.0, -3.0]) / np.exp([-1.0, -2.0, -3.0]).sum()
    np.testing.assert_allclose(values["prob_mass"], [q0, q1[0]])
    np.testing.assert_allclose(values["brier"], [2 * (1 - q0) ** 2, (1 - q1[0]) ** 2 + q1[1] ** 2 + q1[2] ** 2])


def test_loglikelihood_and_generation_metrics():
    results = [scoring.LoglikResult(-0.5, True, 2, 2), scoring.LoglikResult(-3.0, False, 1, 4)]
    values = metrics.loglikelihood_items(results)
    np.testing.assert_allclose(values["acc"], [1, 0])
    np.testing.assert_allclose(values["token_accuracy"], [1, 0.25])
    np.testing.assert_allclose(values["target_prob"], np.exp([-0.5, -3.0]))
    gen = metrics.generation_items([[1, 2], [5]], [[1, 2], [6, 7]], [" 12 ", "x"], [" 12", " y"], results)
    np.testing.assert_allclose(gen["exact_match"], [1, 0])
    np.testing.assert_allclose(gen["edit_distance"], [0, 2])
    np.testing.assert_allclose(gen["logprob"], [-0.5, -3.0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_bf16_cuda_logliks_close_to_float32_cpu():
    model = build_model(VOCAB, seed=3)
    requests = random_requests(1)
    cpu = scoring.loglikelihoods(model, requests, batch_size=4)
    cuda = scoring.loglikelihoods(model.to("cuda", torch.bfloat16), requests, batch_size=4)
    for a, b in itertools.zip_longest(cpu, cuda):
        assert b.loglik == pytest.approx(a.loglik, rel=0.05, abs=0.1)
