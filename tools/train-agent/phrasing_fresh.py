"""A second held-out phrasing, written without seeing the training frames or the first held-out set
(see tools/train-agent/README.md): a measure of generalisation that no training decision has looked at."""
from phrasing import Frames

FRESH = Frames(
    generate=(
        "could you do me a picture of {d}?",
        "i'd like a new image: {d}",
        "start a fresh picture with {d}",
        "new one please: {d}",
        "can i get a brand new picture with {d}?",
        "let's see {d} in a new picture",
        "set up a new canvas with {d}",
    ),
    plan=(
        "{g}, then {e}",
        "first {g}. after that, {e}",
        "{g} and when it's done, {e}",
        "{g}; once you have it, {e}",
        "step one: {g}. step two: {e}",
        "{g}, and following that {e}",
    ),
    plan_two=(
        "{g}, and also {h}",
        "two things: {g}; {h}",
        "{g}. separately, {h}",
        "{g}, plus a second one: {h}",
        "first {g}, then {h} as a separate picture",
        "{g} and {h}, as two different pictures",
    ),
    recolour=(
        "can {o} be {new} instead?",
        "i'd rather {o} were {new}",
        "{o} should be {new}",
        "go with {new} for {o}",
        "let's have {o} in {new}",
        "set {o} to {new}",
        "{o} in {new}, please",
    ),
    remove=(
        "get rid of {o}",
        "take {o} out",
        "i don't want {o} anymore",
        "can you drop {o}?",
        "{o} has to go",
        "ditch {o}, please",
        "same picture but without {o}",
    ),
    add=(
        "also pop in {x}",
        "can you fit {x} in there as well?",
        "i'd like {x} alongside what's already there",
        "keep everything and bring in {x} too",
        "besides what's there, i'd like {x}",
        "insert {x} as well",
        "the picture needs {x} too",
    ),
    move=(
        "bring {o} {to}",
        "could {o} go {to}?",
        "i want {o} {at} instead",
        "{o} belongs {at}",
        "nudge {o} {to}",
        "reposition {o} so it's {at}",
        "have {o} sit {at}",
        "push {o} {to}, please",
    ),
    background=(
        "i'd like a {bg} background",
        "can the background be {bg}?",
        "set the background to {bg}",
        "go {bg} behind the shapes",
        "{bg} background instead, please",
        "let's have it on {bg}",
    ),
    explicit=(
        "in {n}, {e}",
        "for picture {n}: {e}",
        "{e} in {n}",
        "going back to {n}, {e}",
        "about {n}: {e}",
        "{e} (this is for {n})",
    ),
    greet=(
        "hi there",
        "hello!",
        "hey",
        "good morning",
        "hiya",
        "hey, how's it going?",
    ),
    capabilities=(
        "what can you do?",
        "what are you able to do for me?",
        "what sort of things do you handle?",
        "how can you be useful here?",
        "what are your abilities?",
        "what kinds of requests do you understand?",
    ),
    colours=(
        "which colours do you know?",
        "what colors are available?",
        "what shades can i pick from?",
        "tell me the colours you support",
        "what hues are on offer?",
    ),
    shapes=(
        "which shapes do you know?",
        "what shapes can you do?",
        "what kinds of shapes are there?",
        "tell me the shapes you support",
        "what objects can i ask for?",
    ),
    describe=(
        "what's in {n}?",
        "what does {n} look like?",
        "tell me about {n}",
        "what's on picture {n}?",
        "can you walk me through {n}?",
        "remind me what {n} has in it",
    ),
    thanks=(
        "much appreciated",
        "ta",
        "great, that's perfect",
        "nice work, appreciate it",
        "brilliant, ta very much",
        "that's exactly what i wanted",
    ),
    prefixes=(
        "hey, ",
        "ok so ",
        "um, ",
        "right, ",
        "quick one: ",
    ),
    suffixes=(
        " please",
        ", if you can",
        " when you get a chance",
        ", if that's ok",
        " asap",
    ),
)


def _without_training_phrasing(frames: Frames) -> Frames:
    """FRESH as written, less what training has: a frame that is a training frame (also with
    its slots removed), or a filler that is one of training's. Common phrasings
    ("what can you do?", "{g}, then {e}") are bound to be written again; they are not new."""
    import phrasing as P

    seen = P.TRAIN.all_frames() | P.AUGMENT.all_frames()
    seen_bare = {P.bare_frame(f) for f in seen}
    fillers = {x.strip(" ,") for f in (P.TRAIN, P.AUGMENT) for x in f.prefixes + f.suffixes}
    kept = {}
    for name in Frames.__dataclass_fields__:
        values = getattr(frames, name)
        if name in ("prefixes", "suffixes"):
            kept[name] = tuple(x for x in values if x.strip(" ,") not in fillers)
        else:
            kept[name] = tuple(f for f in values if f not in seen and P.bare_frame(f) not in seen_bare)
    return Frames(**kept)


FRESH = _without_training_phrasing(FRESH)
