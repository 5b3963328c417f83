"""The held-out phrasing shares no sentence frame and no filler word with training, and the
training corpus never holds a held-out request.

Run: /tmp/fixtures-venv/bin/python -m pytest tools/train-agent/test_phrasing.py"""

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import conversations as C  # noqa: E402
import corpus  # noqa: E402
import phrasing as P  # noqa: E402


def test_frames_are_disjoint():
    assert not P.TRAIN.all_frames() & P.HELDOUT.all_frames()


def test_fillers_are_disjoint():
    train = {w for x in P.TRAIN.prefixes + P.TRAIN.suffixes for w in x.replace(",", " ").split()}
    held = {w for x in P.HELDOUT.prefixes + P.HELDOUT.suffixes for w in x.replace(",", " ").split()}
    assert not train & held


def test_frame_words_not_in_training_frames():
    """Each held-out frame, with its slots removed, is not a training frame's text either."""
    train = {P.bare_frame(f) for f in P.TRAIN.all_frames()}
    assert not [f for f in P.HELDOUT.all_frames() if P.bare_frame(f) in train]


def test_augment_adds_no_heldout_word():
    """The training-only word lists use no word that only the held-out phrasing has, and none
    of their frames is a held-out one."""
    everything = P.everything
    heldout_only = (P.frame_words(everything(P.HELDOUT)) - P.frame_words(everything(P.TRAIN))
                    - P._slot_words())
    assert len(heldout_only) > 50
    assert not P.frame_words(everything(P.AUGMENT)) & heldout_only
    assert not everything(P.AUGMENT) & everything(P.HELDOUT)


def test_made_up_words_are_not_words_of_the_phrasings():
    rng = random.Random(7)
    made_up = {P.pseudo_word(rng) for _ in range(20000)}
    assert not made_up & P.frame_words(P.HELDOUT.all_frames() | set(P.HELDOUT.prefixes))


def assert_shares_no_frame_or_filler(heldout: P.Frames, *others: P.Frames) -> None:
    """No frame, frame with its slots removed, or filler of `heldout` is one of `others`'."""
    bare = P.bare_frame
    fillers = lambda f: {x.strip(" ,") for x in f.prefixes + f.suffixes}
    for seen in others:
        assert not heldout.all_frames() & seen.all_frames()
        assert not {bare(f) for f in heldout.all_frames()} & {bare(f) for f in seen.all_frames()}
        assert not fillers(heldout) & fillers(seen), fillers(heldout) & fillers(seen)


def test_fresh_phrasing_shares_no_frame_or_filler_with_training():
    """The second held-out phrasing (written without reading the others) is disjoint from
    both training phrasings in frames, bare frames and fillers."""
    import phrasing_fresh

    assert_shares_no_frame_or_filler(phrasing_fresh.FRESH, P.TRAIN, P.AUGMENT)


def test_third_phrasing_shares_no_frame_or_filler_with_training_or_the_first_set():
    """The third held-out phrasing (written blind, like the second) is disjoint from both
    training phrasings and from the first held-out set, which has guided training changes."""
    import phrasing_third

    assert_shares_no_frame_or_filler(phrasing_third.THIRD, P.TRAIN, P.AUGMENT, P.HELDOUT)


def test_fourth_phrasing_shares_no_frame_or_filler_with_training_or_the_earlier_sets():
    """The fourth held-out phrasing (written blind after run 13 was adopted) is disjoint from
    both training phrasings and from the three earlier held-out sets."""
    import phrasing_fourth
    import phrasing_fresh
    import phrasing_third

    assert_shares_no_frame_or_filler(phrasing_fourth.FOURTH, P.TRAIN, P.AUGMENT, P.HELDOUT,
                                     phrasing_fresh.FRESH, phrasing_third.THIRD)


def test_training_sample_never_holds_a_heldout_message():
    heldout = corpus.heldout_messages()
    assert len(heldout) >= 120
    rng = random.Random(5)
    for _ in range(3000):
        conv = C.Conversation(rng, P.TRAIN, augment=0.5)
        text, _ = conv.turn()
        assert text not in heldout


def test_heldout_mix():
    for name in corpus.HELDOUT_FILES:
        lines = [json.loads(x) for x in (Path(__file__).parent / name).read_text().splitlines()]
        share = {k: sum(x["expect"]["action"] == k for x in lines) / len(lines)
                 for k in ("generate", "edit", "chat")}
        assert len(lines) == 160, name
        assert abs(share["generate"] - 0.45) < 0.03 and abs(share["edit"] - 0.40) < 0.03, name


def test_run_corpus_never_held_a_heldout_message():
    """The bundled model's corpus (train.py's seed and sizes, from studio.json) re-sampled
    without rendering: none of its requests is a held-out message."""
    root = Path(__file__).resolve().parents[2]
    training = json.loads((root / "assets/models/shapes-agent/studio.json").read_text())["training"]
    for part in training.get("parts", [training]):
        said: list[str] = []
        corpus.rendered_corpus(None, part["conversations"], part["seed"], part["dates"], said,
                               augment=part.get("augment", 0.0),
                               pseudo_share=part.get("pseudo_share", P.PSEUDO_SHARE),
                               edit_share=part.get("edit_share", 0.0))
        assert not set(said) & corpus.heldout_messages()
        print(f"seed {part['seed']}: {len(said)} training requests, none held out")


if __name__ == "__main__":
    for name, test in list(globals().items()):
        if name.startswith("test_"):
            test()
            print("ok", name)
