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
    def bare(frame):
        for slot in ("{d}", "{o}", "{new}", "{to}", "{at}", "{x}", "{bg}", "{e}", "{n}", "{g}", "{h}"):
            frame = frame.replace(slot, "")
        return " ".join(frame.split())
    train = {bare(f) for f in P.TRAIN.all_frames()}
    assert not [f for f in P.HELDOUT.all_frames() if bare(f) in train]


def test_training_sample_never_holds_a_heldout_message():
    heldout = corpus.heldout_messages()
    assert len(heldout) >= 120
    rng = random.Random(5)
    for _ in range(3000):
        conv = C.Conversation(rng, P.TRAIN)
        text, _ = conv.turn()
        assert text not in heldout


def test_heldout_mix():
    lines = [json.loads(x) for x in (Path(__file__).parent / "heldout.jsonl").read_text().splitlines()]
    share = {k: sum(x["expect"]["action"] == k for x in lines) / len(lines) for k in ("generate", "edit", "chat")}
    assert abs(share["generate"] - 0.45) < 0.03 and abs(share["edit"] - 0.40) < 0.03


def test_run_corpus_never_held_a_heldout_message():
    """The bundled model's corpus (train.py's seed and sizes, from studio.json) re-sampled
    without rendering: none of its requests is a held-out message."""
    root = Path(__file__).resolve().parents[2]
    training = json.loads((root / "assets/models/shapes-agent/studio.json").read_text())["training"]
    said: list[str] = []
    corpus.rendered_corpus(None, training["conversations"], training["seed"], training["dates"], said)
    assert not set(said) & corpus.heldout_messages()
    print(f"{len(said)} training requests, none held out")


if __name__ == "__main__":
    for name, test in list(globals().items()):
        if name.startswith("test_"):
            test()
            print("ok", name)
