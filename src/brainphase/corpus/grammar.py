"""The ``generated`` corpus source: a small seeded probabilistic grammar of children's stories."""

from __future__ import annotations

import random

from brainphase import __version__
from brainphase.corpus.sources import GENERATED_LICENCE, Document

# --- the generated source: a small probabilistic grammar ------------------------------

_NAMES = {
    "she": ["Anna", "Clara", "Mira", "Lena", "Rosa", "Nora", "Ida", "Vera", "Lucy", "Maud"],
    "he": ["Tom", "Hugo", "Felix", "Otto", "Leo", "Max", "Paul", "Emil", "Jonas", "Karl"],
}
_POSSESSIVE = {"she": "her", "he": "his"}
_TOPICS = {
    "the harbour": "boat sail rope fish net wave gull anchor island lighthouse shell storm captain crab".split(),
    "the forest": "tree fox owl path river stone mushroom deer branch cave wolf berry nest moss".split(),
    "the city": "street tram bridge market window tower clock shop bakery square train lamp dog crowd".split(),
    "the farm": "cow barn field horse goat hen fence tractor apple well pig haystack lamb gate".split(),
    "the school": "book teacher pencil desk map lesson bell garden ball friend letter song painting chair".split(),
    "the mountain": "peak snow goat cliff hut trail eagle cloud glacier valley rock sled lake flag".split(),
}
_COMMON_NOUNS = "box cake coat hat bag key song story door cup bottle basket kite lantern blanket".split()
_ADJECTIVES = ("old small big quiet bright dark green red blue cold warm tired happy strange heavy "
               "light tall little brave shy wet dry early late gentle noisy").split()
_ADVERBS = "slowly quickly quietly carefully suddenly happily softly again together finally".split()
_PREPOSITIONS = "near behind under above beside inside across toward".split()
# (base, third person singular, past)
_INTRANSITIVE = [("walk", "walks", "walked"), ("run", "runs", "ran"), ("sleep", "sleeps", "slept"),
                 ("laugh", "laughs", "laughed"), ("wait", "waits", "waited"), ("sing", "sings", "sang"),
                 ("rest", "rests", "rested"), ("shine", "shines", "shone"), ("fall", "falls", "fell"),
                 ("listen", "listens", "listened"), ("wander", "wanders", "wandered"), ("hide", "hides", "hid")]
_TRANSITIVE = [("see", "sees", "saw"), ("find", "finds", "found"), ("carry", "carries", "carried"),
               ("open", "opens", "opened"), ("watch", "watches", "watched"), ("paint", "paints", "painted"),
               ("follow", "follows", "followed"), ("build", "builds", "built"), ("lose", "loses", "lost"),
               ("hold", "holds", "held"), ("clean", "cleans", "cleaned"), ("count", "counts", "counted"),
               ("like", "likes", "liked"), ("need", "needs", "needed"), ("want", "wants", "wanted")]
_SPEECH_VERBS = ["said", "asked", "whispered", "shouted", "answered"]
_CONNECTIVES = ["and", "but", "so", "because", "while"]
_TIMES = ["In the morning", "At noon", "Later that day", "In the evening", "At night", "The next day", "After a while"]


class _StoryGrammar:
    """Sentences of one story: a protagonist (name, pronoun) and a topic shared by all sentences.

    The long-range structure: the protagonist's name and pronoun recur, the topic's nouns
    recur throughout a story, quotations open and close, present-tense quoted speech
    agrees in number with its subject, and each story ends with a closing formula.
    """

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.pronoun = rng.choice(["she", "he"])
        self.name = rng.choice(_NAMES[self.pronoun])
        self.place = rng.choice(sorted(_TOPICS))
        self.nouns = _TOPICS[self.place]

    def noun_phrase(self, plural: bool) -> str:
        rng = self.rng
        noun = rng.choice(self.nouns) if rng.random() < 0.75 else rng.choice(_COMMON_NOUNS)
        if plural:
            noun = noun + ("es" if noun.endswith(("s", "sh", "ch", "x")) else "s")
            det = rng.choice(["the", "some", "two", "many", "the"])
        else:
            det = rng.choice(["the", "a", "the", "that", _POSSESSIVE[self.pronoun]])
            if det == "a" and noun[0] in "aeiou":
                det = "an"
        if rng.random() < 0.4:
            adjective = rng.choice(_ADJECTIVES)
            if det == "an" and adjective[0] not in "aeiou":
                det = "a"
            elif det == "a" and adjective[0] in "aeiou":
                det = "an"
            return f"{det} {adjective} {noun}"
        return f"{det} {noun}"

    def clause_past(self) -> str:
        rng = self.rng
        subject = rng.choice([self.name, self.pronoun, self.pronoun, self.noun_phrase(rng.random() < 0.3)])
        if rng.random() < 0.5:
            verb = rng.choice(_TRANSITIVE)[2]
            obj = self.noun_phrase(rng.random() < 0.3) if rng.random() < 0.85 else rng.choice(["it", "them"])
            clause = f"{subject} {verb} {obj}"
        else:
            clause = f"{subject} {rng.choice(_INTRANSITIVE)[2]}"
        if rng.random() < 0.35:
            clause += f" {rng.choice(_PREPOSITIONS)} {self.noun_phrase(False)}"
        if rng.random() < 0.2:
            clause += f" {rng.choice(_ADVERBS)}"
        return clause

    def quoted_speech(self) -> str:
        rng = self.rng
        plural = rng.random() < 0.4
        subject = self.noun_phrase(plural)
        if rng.random() < 0.5:
            verb = "are" if plural else "is"
            body = f"{subject} {verb} {rng.choice(_ADJECTIVES)}"
        else:
            base, singular, _ = rng.choice(_INTRANSITIVE)
            body = f"{subject} {base if plural else singular} {rng.choice(_PREPOSITIONS)} {self.noun_phrase(False)}"
        speaker = rng.choice([self.name, self.pronoun])
        if rng.random() < 0.3:
            verb = "are" if plural else "is"
            where = f"Where {verb} {subject}?"
            return f'"{where}" asked {speaker}.' if speaker == self.name else f'"{where}" {speaker} asked.'
        verb = rng.choice(_SPEECH_VERBS)
        return f'"{_capitalize(body)}," {verb} {speaker}.' if speaker == self.name else f'"{_capitalize(body)}," {speaker} {verb}.'

    def sentence(self) -> str:
        rng = self.rng
        kind = rng.random()
        if kind < 0.15:
            return self.quoted_speech()
        if kind < 0.3:
            return f"{rng.choice(_TIMES)}, {self.clause_past()}."
        if kind < 0.5:
            return f"{_capitalize(self.clause_past())}, {rng.choice(_CONNECTIVES)} {self.clause_past()}."
        if kind < 0.58:
            return f"When {self.clause_past()}, {self.clause_past()}."
        return f"{_capitalize(self.clause_past())}."

    def story(self, min_words: int) -> str:
        """Paragraphs of 2-6 sentences until at least ``min_words`` words, then a closing line."""
        rng = self.rng
        paragraphs = [f"Once there was a {rng.choice(_ADJECTIVES)} {'girl' if self.pronoun == 'she' else 'boy'} "
                      f"called {self.name} who lived near {self.place}."]
        n_words = len(paragraphs[0].split())
        while n_words < min_words:
            paragraph = " ".join(self.sentence() for _ in range(rng.randint(2, 6)))
            n_words += len(paragraph.split())
            paragraphs.append(paragraph)
        paragraphs.append(f"And that was the end of the story of {self.name} and {self.place}.")
        return "\n\n".join(paragraphs)


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def generate_stories(n_stories: int, min_words: int, seed: int) -> list[str]:
    """``n_stories`` stories of at least ``min_words`` words each from the project's grammar.

    Deterministic for a given ``seed``; see :class:`_StoryGrammar` for the structure.
    """
    rng = random.Random(seed)
    return [_StoryGrammar(rng).story(min_words) for _ in range(n_stories)]


def generated_documents(n_runs: int, run_words: int, train_chars: int, valid_fraction: float,
                        seed: int) -> tuple[list[Document], dict]:
    """Stimulus stories (long enough for one run each) and enough training stories for ``train_chars``."""
    stimulus = generate_stories(n_runs, run_words + 20, seed=2 * seed + 1)
    # stories of ~600 words (~3300 characters); generate until train + valid are covered
    target = train_chars / (1.0 - valid_fraction)
    rng_seed = 2 * seed
    texts: list[str] = []
    total = 0
    rng = random.Random(rng_seed)
    while total < target:
        text = _StoryGrammar(rng).story(rng.randint(300, 900))
        texts.append(text)
        total += len(text) + 2
    documents = [Document(f"stimulus_story{i + 1}", text, True) for i, text in enumerate(stimulus)]
    documents += [Document(f"story{i + 1:05d}", text, False) for i, text in enumerate(texts)]
    source = {"origin": f"generated by brainphase {__version__} grammar (brainphase.stimuli.generate_stories), seed {seed}",
              "licence": GENERATED_LICENCE, "files": {}}
    return documents, source
