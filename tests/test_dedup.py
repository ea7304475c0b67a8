from tunesmith.curation.dedup import exact_dedup, near_dedup, sample_clusters, semantic_dedup
from tunesmith.curation.leakage import remove_leaks
from tunesmith.curation.minhash import shingle_hashes, signatures
from tunesmith.curation.records import make_example


def ex(text: str, label: str | None = "billing", source: str | None = None):
    return make_example(
        [{"role": "user", "content": text}, {"role": "assistant", "content": label or "answer"}],
        source or text[:20],
        label,
    )


def test_exact_dedup_ignores_case_and_whitespace_and_reports_conflicts():
    a, b = ex("Site is DOWN", "urgent", "f:1"), ex("  site is   down ", "urgent", "f:2")
    c, d = ex("site is down", "technical", "f:3"), ex("SITE is down", "technical", "f:4")
    result = exact_dedup([a, b, c, d])
    assert [e.source for e in result.kept] == ["f:1", "f:3"]
    assert sorted((dup.source, kept.source) for dup, kept, _ in result.removed) == [("f:2", "f:1"), ("f:4", "f:3")]
    assert len(result.conflicts) == 1 and {e.label for e in result.conflicts[0]} == {"urgent", "technical"}


def test_near_dedup_catches_typos_and_small_edits_but_not_different_texts():
    original = ex(
        "I was charged twice for my subscription this month, can you refund one of the payments?", source="f:1"
    )
    typo = ex("I was chraged twice for my subscription this month, can you refund one of the payments??", source="f:2")
    other = ex("How do I switch from the monthly plan to the annual one and what would I save?", source="f:3")
    result = near_dedup([original, typo, other], threshold=0.7)
    assert [e.source for e in result.kept] == ["f:1", "f:3"]
    (dup, kept, similarity) = result.removed[0]
    assert (dup.source, kept.source) == ("f:2", "f:1") and 0.7 <= similarity < 1.0


def test_near_duplicates_with_different_labels_are_conflicts_not_removals():
    a = ex("my card payment failed again today at checkout", "billing", "f:1")
    b = ex("my card payment failed again today at checkout!", "technical", "f:2")
    result = near_dedup([a, b], threshold=0.7)
    assert len(result.kept) == 2 and result.removed == [] and len(result.conflicts) == 1


def test_clusters_keep_the_first_and_are_sampled_for_review():
    texts = [
        "please reset my password now",
        "please reset my password now!",
        "please reset my pasword now",
        "where is your office located",
    ]
    result = near_dedup([ex(t, source=f"f:{i}") for i, t in enumerate(texts)], threshold=0.6)
    assert [e.source for e in result.kept] == ["f:0", "f:3"]
    (cluster,) = sample_clusters(result)
    assert cluster["kept"]["source"] == "f:0" and {r["source"] for r in cluster["removed"]} == {"f:1", "f:2"}


def _true_jaccard(x: str, y: str, n: int = 5) -> float:
    a = {x.lower()[i : i + n] for i in range(len(x) - n + 1)}
    b = {y.lower()[i : i + n] for i in range(len(y) - n + 1)}
    return len(a & b) / len(a | b)


def test_minhash_signatures_estimate_jaccard_similarity():
    base = "the quick brown fox jumps over the lazy dog near the river bank on a sunny afternoon"
    variants = [
        base.replace("quick", "slow"),
        base.replace("lazy dog", "sleepy cat"),
        base[:40],
        "completely different words here",
    ]
    sigs = signatures([base] + variants, num_perm=256)
    for variant, sig in zip(variants, sigs[1:], strict=True):
        assert abs(sigs[0].jaccard(sig) - _true_jaccard(base, variant)) < 0.1
    assert signatures([base])[0].jaccard(signatures([base.upper() + "  "])[0]) == 1.0  # normalized first


def test_word_and_char_shingles():
    assert len(shingle_hashes("The  Cat sat", unit="word", n=2)) == 2
    assert len(shingle_hashes("ab", unit="char", n=5)) == 1
    assert (shingle_hashes("Same text") == shingle_hashes("same   TEXT")).all()


def test_semantic_dedup_finds_paraphrases_with_the_real_encoder():
    texts = [
        "How do I reset my password?",
        "How can I reset my password?",
        "What are your opening hours on Saturday?",
        "The mobile app crashes when I upload a photo.",
    ]
    result = semantic_dedup([ex(t, source=f"f:{i}") for i, t in enumerate(texts)], threshold=0.9)
    assert [e.source for e in result.kept] == ["f:0", "f:2", "f:3"]
    assert result.removed[0][0].source == "f:1" and result.removed[0][2] >= 0.9


def test_leakage_check_removes_training_copies_of_held_out_examples():
    test = [ex("The export to CSV button does nothing when I click it in Firefox.", "technical", "test:1")]
    train = [
        ex("the export to csv button does nothing when i click it in firefox.", "technical", "train:1"),  # exact
        ex(
            "The export to CSV button does nothing when I click it in Firefox!!", "billing", "train:2"
        ),  # near, any label
        ex("How do I enable two-factor authentication for my team?", "technical", "train:3"),
    ]
    result = remove_leaks(train, test, threshold=0.8)
    assert [e.source for e in result.train] == ["train:3"]
    assert [(e.source, m.source) for e, m, _ in result.removed] == [("train:1", "test:1"), ("train:2", "test:1")]
