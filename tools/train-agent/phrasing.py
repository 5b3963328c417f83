"""How users ask: sentence frames and filler words, one set for training and a disjoint one for
the held-out requests (test_phrasing.py checks that no frame or filler is shared).

Slot words (colours, shapes, place and relation phrasings, "it", "#N") are shared: they are the
world's vocabulary, not the phrasing. Frames use the slots
  {d}   a picture description ("a red circle on the left, on black")
  {o}   the object an edit is about ("it", "the star", "the red star")
  {new} a colour; {to} / {at} a place phrase; {x} an object to add; {bg} white or black
and {e} (the edit phrase) in the wrappers that name a picture (#N).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# --- shared slot phrasings ------------------------------------------------------------------
PLACE_AT = {
    "left": ["on the left", "on the left side", "at the left", "on the left-hand side"],
    "right": ["on the right", "on the right side", "at the right", "on the right-hand side"],
    "top": ["at the top", "on top", "near the top", "up top", "at the top edge"],
    "bottom": ["at the bottom", "near the bottom", "down at the bottom", "at the bottom edge"],
    "centre": ["in the centre", "in the center", "in the middle", "at the centre", "centred",
               "centered"],
}
PLACE_TO = {
    "left": ["to the left", "to the left side", "over to the left", "left"],
    "right": ["to the right", "to the right side", "over to the right", "right"],
    "top": ["to the top", "up to the top", "to the top edge", "up"],
    "bottom": ["to the bottom", "down to the bottom", "to the bottom edge", "down"],
    "centre": ["to the centre", "to the center", "to the middle", "into the middle"],
}
RELATION_WORDS = {
    "left_of": ["to the left of", "left of", "on the left of"],
    "right_of": ["to the right of", "right of", "on the right of"],
    "above": ["above", "over"],
    "below": ["below", "under", "beneath", "underneath"],
}
# " on black" etc. after a description; "" leaves the background out (white by default).
BG_SUFFIX = {
    "white": [", on white", " on white", " on a white background", " with a white background",
              ", white background", " against white"],
    "black": [", on black", " on black", " on a black background", " with a black background",
              ", black background", " against black"],
}


@dataclass(frozen=True)
class Frames:
    generate: tuple[str, ...]
    plan: tuple[str, ...]  # {g}: a generate request, {e}: an edit of its result
    plan_two: tuple[str, ...]  # {g}, {h}: two pictures
    recolour: tuple[str, ...]
    remove: tuple[str, ...]
    add: tuple[str, ...]
    move: tuple[str, ...]
    background: tuple[str, ...]
    explicit: tuple[str, ...]  # an edit phrase {e} about picture {n}
    greet: tuple[str, ...]
    capabilities: tuple[str, ...]
    colours: tuple[str, ...]
    shapes: tuple[str, ...]
    describe: tuple[str, ...]  # {n}
    thanks: tuple[str, ...]
    prefixes: tuple[str, ...]
    suffixes: tuple[str, ...]
    # Chatter with no request in it (made-up words): answered with what the agent can do.
    chatter: tuple[str, ...] = ()

    def all_frames(self) -> set[str]:
        out: set[str] = set()
        for name in self.__dataclass_fields__:
            if name not in ("prefixes", "suffixes"):
                out |= set(getattr(self, name))
        return out


TRAIN = Frames(
    generate=("draw {d}", "please draw {d}", "can you draw {d}?", "draw me {d}", "make {d}",
              "make me a picture of {d}", "create {d}", "generate {d}", "paint {d}",
              "show me {d}", "i want {d}", "picture of {d}", "{d}", "{d} please", "now draw {d}",
              "new picture: {d}", "next, {d}", "let's have {d}", "how about {d}?",
              "draw {d} for me", "can i get {d}?", "i need {d}", "an image of {d}",
              "make an image with {d}", "new one: {d}", "now {d}"),
    plan=("{g}, then {e}", "{g} and then {e}", "{g}; after that {e}", "first {g}, then {e}",
          "{g}. then {e}"),
    plan_two=("{g}, then {h}", "{g} and also {h}", "first {g}, then {h}", "{g}. and {h}"),
    recolour=("make {o} {new}", "now make {o} {new}", "change {o} to {new}", "turn {o} {new}",
              "colour {o} {new}", "recolour {o} {new}", "paint {o} {new}", "{o} should be {new}",
              "make {o} {new} instead", "change the colour of {o} to {new}", "{new} {o}"),
    remove=("remove {o}", "delete {o}", "take out {o}", "erase {o}", "get rid of {o}",
            "drop {o}", "now remove {o}", "without {o}"),
    add=("add {x}", "also put {x}", "put {x} too", "add {x} as well", "now add {x}",
         "and {x} too", "include {x}", "put in {x} also"),
    move=("move {o} {to}", "put {o} {at}", "now move {o} {to}", "shift {o} {to}",
          "place {o} {at}", "{o} {at} instead", "move {o} {at}"),
    background=("{bg} background please", "make the background {bg}", "change the background to {bg}",
                "set the background {bg}", "put it on {bg}", "on {bg} instead",
                "now a {bg} background", "{bg} background"),
    explicit=("{e} in {n}", "in {n}, {e}", "{n}: {e}", "for {n}, {e}"),
    greet=("hi", "hello", "hey there", "good morning", "hello!", "hi there", "hey"),
    capabilities=("what can you draw?", "what can you do?", "what do you make?", "help",
                  "what are you?", "how does this work?"),
    colours=("what colours do you know?", "which colors can you use?", "list the colours",
             "what colours are there?"),
    shapes=("what shapes can you draw?", "which shapes do you know?", "list the shapes",
            "what shapes are there?"),
    describe=("what is in {n}?", "what does {n} show?", "describe {n}", "what's on {n}?"),
    thanks=("thanks", "thank you", "great, thanks!", "nice", "perfect", "thanks a lot"),
    prefixes=("please ", "ok ", "hey, ", "so ", "okay, ", "right, ", "and ", "ok so "),
    suffixes=(" please", " thanks", "!", ".", " for me", " pls", " now", " ok?"),
)

HELDOUT = Frames(
    generate=("could you sketch {d}", "i'd love to see {d}", "render {d}",
              "produce an image with {d}", "give me {d}", "would you illustrate {d}",
              "put together a picture showing {d}", "what about {d} this time",
              "i'm after {d}", "design {d}", "let me see {d}", "whip up {d}",
              "i would like a drawing of {d}", "time for {d}", "could i have {d}",
              "do one with {d}"),
    plan=("{g} and after it's done {e}", "start with {g}; next {e}", "{g} - once ready, {e}"),
    plan_two=("{g} plus {h}", "{g}, followed by {h}"),
    recolour=("swap the colour to {new} on {o}", "i'd prefer {o} {new}", "could {o} be {new}?",
              "switch {o} over to {new}", "give {o} a {new} colour", "{o} in {new}, please do",
              "let {o} become {new}"),
    remove=("i don't want {o} anymore", "can you take {o} away", "lose {o}",
            "clear {o} off the picture", "scrap {o}"),
    add=("could you add {x} next to it", "throw in {x} as well", "i'd like {x} added",
         "stick {x} in there too"),
    move=("slide {o} {to}", "relocate {o} {to}", "i'd like {o} {at} instead",
          "drag {o} {to}", "could {o} go {to}?"),
    background=("i'd rather have a {bg} backdrop", "switch the background over to {bg}",
                "can the background be {bg}?", "flip the background to {bg}",
                "go with a {bg} background"),
    explicit=("{e} on {n}", "regarding {n}: {e}", "{e} (that's {n})", "about {n} - {e}"),
    greet=("greetings", "howdy", "yo, how's it going", "hiya friend", "good evening"),
    capabilities=("which things are you able to create", "tell me your abilities",
                  "what sort of images do you produce", "explain what you're for"),
    colours=("name every colour available", "what palette do you have",
             "tell me the colors on offer"),
    shapes=("what figures are supported", "tell me the forms you handle",
            "name the shapes on offer"),
    describe=("tell me about {n}", "what's depicted in {n}", "can you explain {n} to me"),
    thanks=("cheers mate", "much appreciated", "brilliant, ta", "lovely work"),
    prefixes=("kindly ", "alright then, ", "hmm, ", "um ", "oh, also "),
    suffixes=(" if you can", " cheers", " ta", " when you get a chance", ", much obliged"),
)


# --- training-only breadth ----------------------------------------------------------------
# A model trained from scratch knows only the words it was trained on, and held-out requests
# use verbs it never saw ("whip up", "relocate"). So that it decides from a request's structure
# (a whole description -> a new picture; an earlier picture's object with a colour, a place or
# nothing -> an edit of it) rather than from its verb, part of the training requests are
# composed from the wider word lists below and from made-up words ({pv}: pseudo_word). None of
# these words is one that only the held-out phrasing uses (test_phrasing.py checks it).
_GEN_VERBS = ("construct", "craft", "compose", "doodle", "form", "depict", "portray", "visualise",
              "visualize", "imagine", "build", "output", "fashion", "conjure", "cook up",
              "come up with", "bring", "send", "fetch", "get", "find", "print",
              "shape", "lay out", "set up", "mock up", "knock out", "whack out", "spin up",
              "put out", "try", "attempt", "work up", "pull up", "{pv}",
              "{pv}", "{pv}", "{pv}")
_GEN_WRAPS = ("{v} {d}", "{v} {d}", "please {v} {d}", "can you {v} {d}?", "{v} me {d}",
              "i want you to {v} {d}", "you should {v} {d}", "now {v} {d}", "{v} {d} for me",
              "proceed to {v} {d}", "just {v} {d}", "try to {v} {d}", "{v} a picture of {d}",
              "{v} an image of {d}", "we need {d}", "my request: {d}", "request: {d}",
              "okay {d}", "{d} is what i want", "{d}, that's all" .replace("that's", "that is"),
              "a new one with {d}", "new image, {d}", "{pv} {d}", "{pv} {pv} {d}",
              "{d} {pv}", "{pv}: {d}")
_RECOLOUR_VERBS = ("tint", "dye", "shade", "convert", "alter", "modify", "adjust", "tweak", "set",
                   "fill", "redo", "recolor", "color", "transform", "repaint", "{pv}", "{pv}")
_RECOLOUR_WRAPS = ("{v} {o} {new}", "{v} {o} to {new}", "{v} {o} into {new}", "{v} {o} in {new}",
                   "can you {v} {o} {new}?", "please {v} {o} {new}", "{o} {new}", "{o} needs to be {new}",
                   "{o} must be {new}", "{o} ought to be {new}", "want {o} {new}", "{o} as {new}",
                   "{new} for {o}", "{v} the colour of {o} {new}", "{v} the color of {o} to {new}",
                   "{o} in {new} instead", "{o}: {new}", "{pv} {o} {new}", "{o} {pv} {new}",
                   "{pv} {pv} {o} {new}")
_REMOVE_VERBS = ("eliminate", "wipe", "wipe out", "cut", "zap", "ditch", "nix", "axe", "strip out",
                 "hide", "pull out", "discard", "dump", "toss", "bin", "omit", "leave out",
                 "clean out", "kill", "junk", "trash", "{pv}", "{pv}", "{pv}")
_REMOVE_WRAPS = ("{v} {o}", "{v} {o}", "please {v} {o}", "can you {v} {o}?", "{v} {o} now",
                 "{o} has to vanish", "no more {o}", "no {o}", "{o} is not needed", "{o} must disappear",
                 "{v} {o} from it", "{v} {o} from the picture", "{pv} {o}", "{pv} {pv} {o}",
                 "{o} {pv}", "{pv} {o} {pv}", "{pv} {pv} {o} {pv}")
_ADD_VERBS = ("insert", "attach", "append", "bring in", "slip in", "pop in", "squeeze in",
              "tack on", "{pv}", "{pv}")
_ADD_WRAPS = ("{v} {x} too", "{v} {x} as well", "{v} {x} also", "also {v} {x}", "{v} {x} to it",
              "{v} {x} in it", "{v} {x} into the picture", "{x} too", "{x} as well",
              "also {x}", "{x} also", "with {x} too", "{pv} {x} too", "{pv} {x} as well",
              "{pv} {x} in it", "put {x} next to it", "{x} beside it", "{x} in addition",
              "{pv} {pv} {x} too", "{pv} {x} {pv} as well")
_MOVE_VERBS = ("push", "nudge", "transfer", "carry", "bring", "reposition", "send", "shove",
               "pull", "haul", "set", "{pv}", "{pv}")
_MOVE_WRAPS = ("{v} {o} {to}", "{v} {o} {to}", "please {v} {o} {to}", "can you {v} {o} {to}?",
               "{o} {to}", "{o} goes {to}", "{o} belongs {at}", "{o} should sit {at}",
               "{o} {at} please", "want {o} {at}", "{pv} {o} {to}",
               "{o} {pv} {to}", "{pv} {o} {at}", "{pv} {o} {to} {pv}", "{pv} {pv} {o} {to}")
_BACKGROUND_WRAPS = ("{v} the background {bg}", "{v} the background to {bg}", "background {bg}",
                     "background: {bg}", "{bg} bg", "{bg} behind it", "with {bg} behind",
                     "{bg} behind the shapes", "the background should be {bg}",
                     "a {bg} background instead", "{bg} background now", "{pv} the background {bg}",
                     "{pv} {bg} background", "background to {bg}")
_BACKGROUND_VERBS = ("tint", "turn", "convert", "alter", "modify", "set", "fill", "paint", "{pv}")


def _compose(wraps: tuple[str, ...], verbs: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted({w.replace("{v}", v) for w in wraps for v in verbs}))


AUGMENT = Frames(
    generate=_compose(_GEN_WRAPS, _GEN_VERBS),
    plan=("{g}; {e}", "{g}, and {e}", "{g}, afterwards {e}", "{g} and after finishing {e}",
          "{g} -> {e}", "{g}. next: {e}", "{g}, after which {e}", "{g}. afterwards, {e}",
          "{g} and right after that {e}", "{g}, {pv} {e}"),
    plan_two=("{g}; {h}", "{g}, also {h}", "{g}. another: {h}", "{g} and additionally {h}",
              "{g}, {pv} {h}", "two pictures: {g}, {h}"),
    recolour=_compose(_RECOLOUR_WRAPS, _RECOLOUR_VERBS),
    remove=_compose(_REMOVE_WRAPS, _REMOVE_VERBS),
    add=_compose(_ADD_WRAPS, _ADD_VERBS),
    move=_compose(_MOVE_WRAPS, _MOVE_VERBS),
    background=_compose(_BACKGROUND_WRAPS, _BACKGROUND_VERBS),
    explicit=("{e} for {n}", "{n} - {e}", "{e}, {n}", "{e} ({n})", "with {n}, {e}", "{e} [{n}]",
              "take {n} and {e}", "using {n}, {e}", "{n} -> {e}", "{e} to {n}", "{pv} {n}: {e}"),
    greet=("hullo", "good afternoon", "morning", "sup", "hey you", "hello hello", "hi again",
           "hey!", "hi :)", "heya", "hello there", "{pv}!", "hi {pv}"),
    capabilities=("what kinds of pictures can you make?", "what are you capable of?",
                  "who are you?", "what is this?", "what can i ask for?", "what do you do?",
                  "how do i use you?", "what is this for?", "can you help me?",
                  "what are you good at?", "what can you {pv}?"),
    colours=("which colours do you have?", "what colours can you paint?", "colours?",
             "do you know many colours?", "what colors are possible?", "which colours exist?",
             "colour options?", "what colours do you {pv}?", "{pv} the colours",
             "{pv} {pv} colors {pv}"),
    shapes=("which shapes?", "shapes?", "what shapes can you make?", "which shapes are possible?",
            "shape options?", "what shapes do you {pv}?", "what kinds of shapes exist?",
            "{pv} the shapes", "{pv} {pv} shapes {pv}"),
    describe=("what did you draw in {n}?", "what is {n}?", "{n}?", "what's in {n}",
              "summarise {n}", "summarize {n}", "what shapes are in {n}?", "{pv} {n}?",
              "{pv} {pv} {n}", "{pv} me {pv} {n}"),
    thanks=("many thanks", "awesome", "cool", "great", "good job", "wonderful", "neat",
            "thx", "ty", "great work" .replace("work", "job"), "{pv}, thanks"),
    prefixes=("actually, ", "well, ", "now then, ", "quick one: ", "one more: ", "hey hey, ",
              "so yeah, ", "{pv}, "),
    chatter=("{pv}", "{pv}", "{pv} {pv}", "{pv} {pv}?", "{pv} {pv} {pv}", "{pv}, {pv} {pv}",
             "{pv} {pv} {pv} {pv}", "what {pv} you {pv}?", "{pv} me {pv}", "is {pv} {pv}?",
             "{pv} you {pv}", "how {pv}?", "{pv}?", "i {pv} {pv}", "the {pv} is {pv}"),
    suffixes=(" asap", " immediately", " quickly", ", thank you", " now please", " :)",
              " {pv}"),
)

# The share of made-up words where a kind has frames with them: the same for every kind, so that
# an unknown word says nothing about which kind of request it is (with frames drawn uniformly,
# a new picture's would be 3% against an edit's 6-11%, and unknown verbs would lean to edits).
PSEUDO_SHARE = 0.3


def _split_pseudo(frames: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return (tuple(f for f in frames if "{pv}" in f), tuple(f for f in frames if "{pv}" not in f))


_AUGMENT_SPLIT = {name: _split_pseudo(getattr(AUGMENT, name)) for name in AUGMENT.__dataclass_fields__}


def augment_frame(rng, kind: str, pseudo_share: float = PSEUDO_SHARE) -> str:
    """A frame of `kind` from AUGMENT, with made-up words `pseudo_share` of the time."""
    pseudo, real = _AUGMENT_SPLIT[kind]
    if pseudo and (not real or rng.random() < pseudo_share):
        return rng.choice(pseudo)
    return rng.choice(real)


_CONSONANTS = "bcdfghjklmnprstvwz"
_VOWELS = "aeiou"


def frame_words(frames) -> set[str]:
    """The words of some frames (or fillers), slots left out."""
    out: set[str] = set()
    for frame in frames:
        out |= set(re.findall(r"[a-z']+", re.sub(r"\{\w+\}", " ", frame.lower())))
    return out


def _slot_words() -> set[str]:
    out: set[str] = set()
    for table in (PLACE_AT, PLACE_TO, RELATION_WORDS, BG_SUFFIX):
        for phrases in table.values():
            out |= frame_words(phrases)
    return out


def bare_frame(frame: str) -> str:
    """A frame with its slots removed: "draw {d} for me" -> "draw for me"."""
    return " ".join(re.sub(r"\{\w+\}", " ", frame).split())


def everything(frames: Frames) -> set[str]:
    """A phrasing's frames and its fillers."""
    return frames.all_frames() | set(frames.prefixes) | set(frames.suffixes)


# Real words a made-up one must not be: every phrasing's and slot's words, the world's.
_REAL_WORDS = (frame_words(everything(TRAIN) | everything(HELDOUT) | everything(AUGMENT))
               | _slot_words() | {"red", "green", "blue", "yellow", "purple", "orange", "circle",
                                  "square", "triangle", "star", "ring", "white", "black"})


def pseudo_word(rng) -> str:
    """A made-up word (consonant-vowel syllables, sometimes a final consonant): a stand-in for
    any verb or filler the model has not seen. Never a word of the phrasings or the world."""
    while True:
        syllables = rng.choice([1, 2, 2, 3])
        word = "".join(rng.choice(_CONSONANTS) + rng.choice(_VOWELS) for _ in range(syllables))
        word += rng.choice(_CONSONANTS) if rng.random() < 0.6 else ""
        if len(word) > 2 and word not in _REAL_WORDS:
            return word


def without_phrasing(frames: Frames, *others: Frames) -> Frames:
    """A held-out phrasing as written, less what `others` have: a frame that is one of theirs
    (also with its slots removed), or a filler that is one of theirs. Common phrasings ("what
    can you do?", "{g}, then {e}") are bound to be written again; they are not new."""
    seen = set().union(*(o.all_frames() for o in others))
    seen_bare = {bare_frame(f) for f in seen}
    fillers = {x.strip(" ,") for o in others for x in o.prefixes + o.suffixes}
    kept = {}
    for name in Frames.__dataclass_fields__:
        values = getattr(frames, name)
        if name in ("prefixes", "suffixes"):
            kept[name] = tuple(x for x in values if x.strip(" ,") not in fillers)
        else:
            kept[name] = tuple(f for f in values if f not in seen and bare_frame(f) not in seen_bare)
    return Frames(**kept)
