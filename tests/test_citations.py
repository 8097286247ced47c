"""Tests of rag.citations: renumbering, sentence support and the marks.

Most tests use tiny hand-made vectors, so each outcome follows from the vectors
alone; the last ones run the real embedding model on real seed abstracts.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rag.citations import (
    UNSUPPORTED,
    UNSUPPORTED_CLOSE,
    UNSUPPORTED_OPEN,
    Renumbering,
    StreamRenumberer,
    renumber,
    sentence_spans,
    strip_citations,
    verify,
)
from rag.prompts import NO_ANSWER
from rag.retrieval import PaperSentences
from rag.types import Source

# Four orthogonal directions: a claim is supported by the abstract sentence that
# shares its direction and by no other.
SPARSE = [1.0, 0.0, 0.0, 0.0]
FAST = [0.0, 1.0, 0.0, 0.0]
GAIN = [0.0, 0.0, 1.0, 0.0]
SLOW = [0.0, 0.0, 0.0, 1.0]
ELSEWHERE = [0.3, 0.3, 0.3, 0.3]

ABSTRACTS = {
    "p1": {
        "We prune widgets with a sparse mask.": SPARSE,
        "Pruned widgets run fast.": FAST,
    },
    "p2": {"The method gains 8% accuracy on widget tasks.": GAIN},
    "p3": {"Gadget training is slow.": SLOW},
}
CLAIMS = {
    "The method prunes widgets with a sparse mask": SPARSE,
    "Pruned widgets are fast": FAST,
    "It gains 8% accuracy on widget tasks": GAIN,
    "It gains 50% accuracy on widget tasks": GAIN,
    "Gadgets train slowly": SLOW,
    # Cosine 0.8 with "Pruned widgets run fast.": supported at the default 0.55.
    "Sparse pruned widgets are fast": [0.6, 0.8, 0.0, 0.0],
    "Widgets were invented in 1950 by a committee": ELSEWHERE,
}


def source(paper_id: str) -> Source:
    return Source(
        id=paper_id,
        title=f"Paper {paper_id}",
        authors=["A. Author"],
        abstract=" ".join(ABSTRACTS[paper_id]),
        score=1.0,
    )


SOURCES = [source("p1"), source("p2"), source("p3")]
SENTENCES = {
    paper_id: PaperSentences(
        list(sentences), np.asarray(list(sentences.values()), dtype=np.float32)
    )
    for paper_id, sentences in ABSTRACTS.items()
}


def fake_encode(texts: list[str]) -> np.ndarray:
    """Look the claim up without its final stop; anything unknown points nowhere."""
    known = {**CLAIMS, **{t: v for s in ABSTRACTS.values() for t, v in s.items()}}
    rows = [known.get(text.strip().rstrip("."), known.get(text.strip(), ELSEWHERE))
            for text in texts]
    return np.asarray(rows, dtype=np.float32)


def check(text: str):
    return verify(text, SOURCES, SENTENCES, fake_encode)


# ---------------------------------------------------------------------------
# Renumbering


def test_citations_are_renumbered_in_order_of_first_use():
    result = check(
        "It gains 8% accuracy on widget tasks [2]. "
        "The method prunes widgets with a sparse mask [1]. Pruned widgets are fast [2]."
    )
    assert result.text.startswith("It gains 8% accuracy on widget tasks [1]. ")
    assert "sparse mask [2]." in result.text
    assert [s.id for s in result.sources] == ["p2", "p1"]


def test_markers_to_missing_sources_are_dropped_without_a_stray_space():
    result = check("The method prunes widgets with a sparse mask [1][7]. Gadgets [0].")
    assert "[7]" not in result.text and "[0]" not in result.text
    assert "sparse mask [1]." in result.text
    assert "Gadgets." in result.text
    assert [s.id for s in result.sources] == ["p1"]


@pytest.mark.parametrize(
    ("marker", "expected"),
    [
        ("[1, 3]", "[1][2]"),
        ("[1-3]", "[1][2][3]"),
        ("[3; 3]", "[1]"),
        ("[2–3]", "[1][2]"),
    ],
)
def test_lists_and_ranges_of_sources_in_one_marker(marker, expected):
    assert renumber(f"Claim {marker}.", Renumbering(3)) == f"Claim {expected}."


def test_only_cited_sources_are_returned():
    result = check("Gadgets train slowly [3].")
    assert [s.id for s in result.sources] == ["p3"]


# ---------------------------------------------------------------------------
# Support


def test_supported_sentences_stay_plain_and_collect_evidence():
    result = check(
        "The method prunes widgets with a sparse mask [1]. Pruned widgets are fast [1]."
    )
    assert result.unsupported == []
    assert UNSUPPORTED_OPEN not in result.text
    assert result.supported_share == 1.0
    assert result.sources[0].evidence == [
        "We prune widgets with a sparse mask.",
        "Pruned widgets run fast.",
    ]


def test_a_sentence_its_cited_abstract_does_not_state_is_marked():
    result = check(
        "Gadgets train slowly [1]. The method prunes widgets with a sparse mask [1]."
    )
    assert result.unsupported == ["Gadgets train slowly [1]."]
    assert result.text.startswith(
        f"{UNSUPPORTED_OPEN}Gadgets train slowly [1].{UNSUPPORTED_CLOSE} The method"
    )
    assert result.supported_share == 0.5


def test_support_needs_the_cited_abstract_not_just_any_retrieved_one():
    # p3 states it, but the sentence cites p2.
    result = check("Gadgets train slowly [2].")
    assert result.unsupported == ["Gadgets train slowly [1]."]
    assert result.sources[0].evidence == []


def test_a_sentence_without_citation_is_unsupported():
    result = check("Pruned widgets are fast. Gadgets train slowly [3].")
    assert result.unsupported == ["Pruned widgets are fast."]
    assert UNSUPPORTED.search(result.text).group(1) == "Pruned widgets are fast."


def test_a_changed_figure_is_unsupported_even_when_the_wording_matches():
    result = check(
        "It gains 50% accuracy on widget tasks [2]. It gains 8% accuracy on widget "
        "tasks [2]."
    )
    assert result.unsupported == ["It gains 50% accuracy on widget tasks [1]."]


def test_the_no_answer_sentence_needs_no_citation_and_means_abstention():
    result = check(NO_ANSWER)
    assert result.abstained
    assert result.sources == [] and result.unsupported == []
    assert result.supported_share is None


def test_no_answer_beside_claims_is_exempt_but_not_an_abstention():
    result = check(f"{NO_ANSWER} Gadgets train slowly [3].")
    assert not result.abstained
    assert result.unsupported == []
    assert result.supported_share == 1.0


def test_short_sentences_are_checked_too():
    result = check("Yes [1]. P=NP [2]. Pruned widgets are fast [1].")
    assert result.unsupported == ["Yes [1].", "P=NP [2]."]


def test_a_short_uncited_lead_in_is_not_a_claim():
    result = check("Answer:\n- The method prunes widgets with a sparse mask [1].")
    assert result.unsupported == [] and result.supported_share == 1.0
    assert check("In short, they say:").unsupported == []
    assert check("The paper proves P=NP [1]:").unsupported


def test_threshold_is_a_parameter():
    text = "Sparse pruned widgets are fast [1]."
    assert check(text).unsupported == []
    stricter = verify(text, SOURCES, SENTENCES, fake_encode, threshold=0.9)
    assert stricter.unsupported == [text]


def test_abstracts_missing_from_the_index_are_embedded_on_the_fly():
    result = verify("Gadgets train slowly [1].", [source("p3")], {}, fake_encode)
    assert result.unsupported == []
    assert result.sources[0].evidence == ["Gadget training is slow."]


def test_the_input_sources_are_not_changed():
    check("The method prunes widgets with a sparse mask [1].")
    assert all(s.evidence == [] for s in SOURCES)


# ---------------------------------------------------------------------------
# Sentences of an answer


def test_markers_after_the_full_stop_belong_to_the_sentence_before():
    text = "Pruned widgets are fast. [1] Gadgets train slowly. [3]"
    spans = [text[start:end] for start, end in sentence_spans(text)]
    assert spans == ["Pruned widgets are fast. [1]", "Gadgets train slowly. [3]"]
    assert check(text).unsupported == []


def test_list_bullets_stay_outside_the_marks():
    result = check("- Gadgets train slowly [1]\n- Pruned widgets are fast [1]")
    assert result.text.splitlines() == [
        f"- {UNSUPPORTED_OPEN}Gadgets train slowly [1]{UNSUPPORTED_CLOSE}",
        "- Pruned widgets are fast [1]",
    ]


def test_strip_citations():
    assert strip_citations("Fast [1][2]. Slow [3, 4].") == "Fast. Slow."


# ---------------------------------------------------------------------------
# Streaming


@given(
    st.lists(
        st.sampled_from(
            ["Claim", " ", "[", "1", "2", "9", "]", ", ", ".", "\n", "-", "x", "[1]"]
        ),
        max_size=40,
    ),
    st.lists(st.integers(min_value=1, max_value=7), max_size=40),
)
def test_streamed_renumbering_equals_renumbering_the_whole(parts, cuts):
    text = "".join(parts)
    renumberer = StreamRenumberer(3)
    pieces, position = [], 0
    for size in cuts:
        pieces.append(renumberer.feed(text[position : position + size]))
        position += size
    pieces.append(renumberer.feed(text[position:]))
    pieces.append(renumberer.flush())
    assert "".join(pieces) == renumber(text, Renumbering(3))


# ---------------------------------------------------------------------------
# The real embedding model on real abstracts

MONGOOSE = Source(
    id="mongoose",
    title="MONGOOSE: A Learnable LSH Framework for Efficient Neural Network Training",
    authors=["Beidi Chen"],
    abstract=(
        "Recent advances by practitioners in the deep learning community have "
        "breathed new life into Locality Sensitive Hashing (LSH), using it to reduce "
        "memory and time bottlenecks in neural network (NN) training. We use the "
        "above insights to build MONGOOSE, an end-to-end LSH framework for efficient "
        "NN training. We find that it achieves up to 8% better accuracy compared to "
        "previous LSH approaches, with 6.5x speed-up and 6x reduction in memory usage."
    ),
    score=1.0,
)


@pytest.fixture(scope="module")
def embedder():
    from rag.embeddings import get_embedder

    return get_embedder()


def test_real_embeddings_tell_a_restatement_from_an_invention(embedder):
    text = (
        "MONGOOSE is an end-to-end LSH framework for efficient neural network "
        "training [1]. It reaches up to 8% better accuracy than earlier LSH "
        "approaches [1]. Transformers were invented in 1950 by Alan Turing [1]. "
        "It reaches up to 40% better accuracy than earlier LSH approaches [1]."
    )
    result = verify(text, [MONGOOSE], {}, embedder.encode)

    assert result.unsupported == [
        "Transformers were invented in 1950 by Alan Turing [1].",
        "It reaches up to 40% better accuracy than earlier LSH approaches [1].",
    ]
    assert [found for found in UNSUPPORTED.findall(result.text)] == result.unsupported
    assert result.supported_share == 0.5
    assert any("8% better accuracy" in line for line in result.sources[0].evidence)
