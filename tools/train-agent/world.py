"""The Shapes world in the words the bundled image models read: generation captions
(`PromptSpec::caption` in src/shapes/world.rs) and editor instructions (src/shapes/edits.rs),
plus what a picture shows after an edit, so the agent can name it later."""

from __future__ import annotations

from dataclasses import dataclass, replace

COLOURS = ["red", "green", "blue", "yellow", "purple", "orange"]
SHAPES = ["circle", "square", "triangle", "star", "ring"]
# place key -> the caption's words (Place::words)
PLACES = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "centre": "in the centre",
}
# relation key -> the caption's words (Relation::words)
RELATIONS = {
    "left_of": "to the left of",
    "right_of": "to the right of",
    "above": "above",
    "below": "below",
}
BACKGROUNDS = ["white", "black"]


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def noun(colour: str, shape: str) -> str:
    return f"{article(colour)} {colour} {shape}"


@dataclass(frozen=True)
class Spec:
    """A picture's content: one object at a place, or a pair in a relation, on a background."""

    objects: tuple[tuple[str, str], ...]  # (colour, shape), one or two
    place: str | None  # single objects
    relation: str | None  # pairs
    background: str

    def caption(self) -> str:
        if self.place is not None:
            (c, s), = self.objects
            subject = f"{noun(c, s)} {PLACES[self.place]}"
        else:
            (c0, s0), (c1, s1) = self.objects
            subject = f"{noun(c0, s0)} {RELATIONS[self.relation]} {noun(c1, s1)}"
        return f"{subject}, on {self.background}"


def single(colour: str, shape: str, place: str, background: str) -> Spec:
    return Spec(((colour, shape),), place, None, background)


def pair(a: tuple[str, str], relation: str, b: tuple[str, str], background: str) -> Spec:
    return Spec((a, b), None, relation, background)


def the(colour: str, shape: str) -> str:
    return f"the {colour} {shape}"


# Editor instructions, exactly edits.rs's templates.
def recolour(colour: str, shape: str, new: str) -> str:
    return f"make {the(colour, shape)} {new}"


def remove(colour: str, shape: str) -> str:
    return f"remove {the(colour, shape)}"


def add(colour: str, shape: str, place: str) -> str:
    return f"add {article(colour)} {colour} {shape} {PLACES[place]}"


def move(colour: str, shape: str, place: str) -> str:
    return f"move {the(colour, shape)} to the {PLACES[place].split(' ', 2)[2]}"


def background(new: str) -> str:
    return f"make the background {new}"


def after_recolour(spec: Spec, index: int, new: str) -> Spec:
    objects = list(spec.objects)
    objects[index] = (new, objects[index][1])
    return replace(spec, objects=tuple(objects))


def after_move(spec: Spec, place: str) -> Spec:
    return replace(spec, place=place)


def after_background(spec: Spec, new: str) -> Spec:
    return replace(spec, background=new)
