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
