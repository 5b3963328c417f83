"""Synthetic Shapes-world conversations in the protocol of src/agent/protocol.json: user
requests in the phrasing of a `Frames` set, the assistant's tool calls (one per turn), the tool
messages after them and the short texts that end each turn.

A request is sampled as (user text, expected first action, the assistant turns that answer it);
`Conversation` keeps the pictures made so far (#1, #2, ...) and what each shows."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import phrasing as P
import world as W

PROTOCOL = json.loads((Path(__file__).resolve().parents[2] / "src/agent/protocol.json").read_text())

GREETING = "Hello! I draw shapes and change pictures. What should I make?"
CAPABILITIES = ("I draw circles, squares, triangles, stars and rings in red, green, blue, yellow, "
                "purple or orange, one alone or two side by side, on white or black. I can also "
                "recolour, remove, add or move a shape, or change the background.")
COLOURS = "Red, green, blue, yellow, purple and orange."
SHAPES = "Circles, squares, triangles, stars and rings."
THANKS = "You're welcome!"
UNSURE = ("I am not sure what you mean. I draw shapes and change pictures: ask me for a picture, "
          "or to change one.")
NO_PICTURE = "There is no picture to change yet. Ask me to draw one, or attach one."
ERRORS = ["the job was cancelled", "the image model ran out of memory"]


def tool_call(name: str, arguments: dict) -> dict:
    return {"role": "assistant",
            "tool_calls": [{"type": "function", "function": {"name": name, "arguments": arguments}}]}


def tool_result(obj: dict) -> dict:
    # serde_json's compact form, as the Rust coordinator writes it
    return {"role": "tool", "content": json.dumps(obj, separators=(",", ":"), ensure_ascii=False)}


def random_spec(rng: random.Random) -> W.Spec:
    bg = rng.choice(W.BACKGROUNDS)
    if rng.random() < 0.5:
        return W.single(rng.choice(W.COLOURS), rng.choice(W.SHAPES), rng.choice(list(W.PLACES)), bg)
    c0, c1 = rng.sample(W.COLOURS, 2)
    return W.pair((c0, rng.choice(W.SHAPES)), rng.choice(list(W.RELATIONS)),
                  (c1, rng.choice(W.SHAPES)), bg)


def describe_user(rng: random.Random, spec: W.Spec) -> str:
    """A user's words for `spec`; the background is left out a third of the time when white."""
    if spec.place is not None:
        (c, s), = spec.objects
        art = rng.choice([W.article(c), W.article(c), "one", "a single"] if rng.random() < 0.2
                         else [W.article(c)])
        subject = f"{art} {c} {s} {rng.choice(P.PLACE_AT[spec.place])}"
    else:
        (c0, s0), (c1, s1) = spec.objects
        subject = (f"{W.noun(c0, s0)} {rng.choice(P.RELATION_WORDS[spec.relation])} "
                   f"{W.noun(c1, s1)}")
    if spec.background == "white" and rng.random() < 0.4:
        return subject
    return subject + rng.choice(P.BG_SUFFIX[spec.background])


def object_ref(rng: random.Random, spec: W.Spec, index: int) -> str:
    c, s = spec.objects[index]
    if len(spec.objects) == 1:
        return rng.choice(["it", "it", "the " + s, f"the {c} {s}", f"the {c} one", "that " + s])
    other = spec.objects[1 - index][1]
    options = [f"the {c} {s}", f"the {c} one"]
    if other != s:
        options += ["the " + s]
    return rng.choice(options)


@dataclass
class Request:
    text: str
    expect: dict  # the first action: generate / edit / chat
    turns: list  # what the assistant does: ("call", name, args, result_fn) / ("say", text)


@dataclass
class Conversation:
    rng: random.Random
    frames: P.Frames
    images: list = field(default_factory=list)  # [(name, Spec | None)]
    messages: list = field(default_factory=list)
    # The share of requests phrased with phrasing.AUGMENT instead of `frames` (training only).
    augment: float = 0.0
    # The share of AUGMENT frames with made-up words (where a kind has such frames).
    pseudo_share: float = P.PSEUDO_SHARE
    # The share of requests made edits of a known picture whatever the draw below says
    # (training only: more practice naming the right object of the right picture).
    edit_share: float = 0.0

    def pick(self, kind: str) -> str:
        """A frame (or filler) of one kind; made-up words fill its {pv} slots. With augment 0
        the random draws are those of `rng.choice(frames.<kind>)` alone (heldout.jsonl)."""
        rng = self.rng
        if kind == "chatter" or (self.augment and rng.random() < self.augment):
            frame = P.augment_frame(rng, kind, self.pseudo_share)
        else:
            frame = rng.choice(getattr(self.frames, kind))
        while "{pv}" in frame:
            frame = frame.replace("{pv}", P.pseudo_word(rng), 1)
        return frame

    def next_name(self) -> str:
        return f"#{len(self.images) + 1}"

    def noise(self, text: str) -> str:
        rng = self.rng
        if rng.random() < 0.2:
            text = self.pick("prefixes") + text
        if rng.random() < 0.2:
            text = text + self.pick("suffixes")
        if rng.random() < 0.15:
            text = text[0].upper() + text[1:]
        return text

    # --- requests ---------------------------------------------------------------------
    def generate_request(self) -> tuple[str, list]:
        spec = random_spec(self.rng)
        frame = self.pick("generate")
        return frame.format(d=describe_user(self.rng, spec)), [("generate", spec)]

    def edit_phrase(self, spec: W.Spec) -> tuple[str, str, W.Spec | None]:
        """(user phrase, editor instruction, the picture afterwards or None if not a caption)."""
        rng = self.rng
        kinds = ["recolour", "move", "add", "background"] if spec.place else \
                ["recolour", "remove", "background"]
        kind = rng.choice(kinds)
        index = rng.randrange(len(spec.objects))
        c, s = spec.objects[index]
        o = object_ref(rng, spec, index)
        if kind == "recolour":
            new = rng.choice([x for x in W.COLOURS if x != c])
            text = self.pick("recolour").format(o=o, new=new)
            return text, W.recolour(c, s, new), W.after_recolour(spec, index, new)
        if kind == "remove":
            return self.pick("remove").format(o=o), W.remove(c, s), None
        if kind == "move":
            place = rng.choice([p for p in W.PLACES if p != spec.place])
            text = self.pick("move").format(o=o, to=rng.choice(P.PLACE_TO[place]),
                                             at=rng.choice(P.PLACE_AT[place]))
            return text, W.move(c, s, place), W.after_move(spec, place)
        if kind == "add":
            place = rng.choice([p for p in W.PLACES if p != spec.place])
            c1 = rng.choice([x for x in W.COLOURS if x != c])
            s1 = rng.choice(W.SHAPES)
            x = f"{W.article(c1)} {c1} {s1} {rng.choice(P.PLACE_AT[place])}"
            return self.pick("add").format(x=x), W.add(c1, s1, place), None
        new = "black" if spec.background == "white" else "white"
        return self.pick("background").format(bg=new), W.background(new), W.after_background(spec, new)

    def edit_request(self, name: str, spec: W.Spec, explicit: bool) -> tuple[str, list]:
        text, instruction, after = self.edit_phrase(spec)
        if explicit:
            text = self.pick("explicit").format(e=text, n=name)
        return text, [("edit", name, instruction, after)]

    def chat_request(self) -> tuple[str, str]:
        rng = self.rng
        known = [(n, s) for n, s in self.images if s is not None]
        options = [("greet", GREETING, None), ("capabilities", CAPABILITIES, None),
                   ("colours", COLOURS, None), ("shapes", SHAPES, None)]
        if self.images:
            options.append(("thanks", THANKS, None))
        if known:
            n, s = rng.choice(known)
            options.append(("describe", f"{n} shows {s.caption()}.", n))
        if self.augment:  # only in training (the held-out draws stay as they were)
            options += [("chatter", UNSURE, None)] * 2
        kind, reply, name = rng.choice(options)
        text = self.pick(kind)
        return (text.replace("{n}", name) if name else text), reply

    # --- the assistant's side -----------------------------------------------------------
    def run_jobs(self, jobs: list, fail: bool) -> list:
        """The assistant's calls, the tool messages and the closing text; pictures are added."""
        out = []
        for i, job in enumerate(jobs):
            if job[0] == "generate":
                prompt = job[1].caption()
                out.append(tool_call("generate_image", {"prompt": prompt}))
                if fail and i == len(jobs) - 1:
                    out.append(tool_result({"error": self.rng.choice(ERRORS)}))
                    break
                name = self.next_name()
                self.images.append((name, job[1]))
                out.append(tool_result({"image": name, "prompt": prompt}))
            else:
                _, source, instruction, after = job
                if source is None:  # "it" in a plan: the picture just made
                    source = self.images[-1][0]
                out.append(tool_call("edit_image", {"image": source, "instruction": instruction}))
                if fail and i == len(jobs) - 1:
                    out.append(tool_result({"error": self.rng.choice(ERRORS)}))
                    break
                name = self.next_name()
                self.images.append((name, after))
                out.append(tool_result({"image": source, "edited": name, "instruction": instruction}))
        last = out[-1]["content"]
        if '"error"' in last:
            text = f"That did not work: {json.loads(last)['error']}."
        else:
            name, spec = self.images[-1]
            text = f"Here is {name}: {spec.caption()}." if spec else f"Here is {name}."
        out.append({"role": "assistant", "content": text})
        return out

    def user(self, text: str) -> None:
        self.messages.append({"role": "user", "content": text})

    def turn(self) -> tuple[str, dict] | None:
        """Adds one exchange; returns (user text, expected first action) for the request."""
        rng = self.rng
        known = [(n, s) for n, s in self.images if s is not None]
        last = self.images[-1] if self.images else None
        r = rng.random()
        attached = None
        if r < 0.30:
            kind = "generate"
        elif r < 0.40:
            kind = "plan"
        elif r < 0.62:
            kind = "edit"
        elif r < 0.72:
            kind = "attached"
        elif r < 0.84:
            kind = "chat"
        else:
            kind = "edit-explicit"
        if self.edit_share and known and rng.random() < self.edit_share:
            kind = rng.choice(["edit", "edit-explicit", "attached"])
        if kind in ("edit", "edit-explicit") and not known:
            kind = "no-picture" if not self.images else "generate"
        if kind == "edit" and (last is None or last[1] is None):
            kind = "edit-explicit"
        fail = rng.random() < 0.04
        if kind == "generate":
            text, jobs = self.generate_request()
        elif kind == "plan":
            g, (job,) = self.generate_request()
            if rng.random() < 0.7:
                e, instruction, after = self.edit_phrase(job[1])
                text = self.pick("plan").format(g=g, e=e)
                jobs = [job, ("edit", None, instruction, after)]
            else:
                h, (job2,) = self.generate_request()
                text = self.pick("plan_two").format(g=g, h=h)
                jobs = [job, job2]
        elif kind == "edit":
            text, jobs = self.edit_request(last[0], last[1], explicit=rng.random() < 0.15)
        elif kind == "edit-explicit":
            name, spec = rng.choice(known)
            text, jobs = self.edit_request(name, spec, explicit=True)
        elif kind == "attached":
            spec = random_spec(rng)
            name = self.next_name()
            self.images.append((name, spec))
            attached = f"[image {name} attached: {spec.caption()}]"
            if rng.random() < 0.85:
                text, jobs = self.edit_request(name, spec, explicit=rng.random() < 0.2)
            else:
                text = self.pick("describe").replace("{n}", name)
                jobs = f"{name} shows {spec.caption()}."
        elif kind == "no-picture":
            text, _, _ = self.edit_phrase(random_spec(rng))
            jobs = NO_PICTURE
        else:
            text, jobs = self.chat_request()
        text = self.noise(text)
        self.user(f"{attached}\n{text}" if attached else text)
        if isinstance(jobs, str):
            self.messages.append({"role": "assistant", "content": jobs})
            return text, {"action": "chat"}
        first = jobs[0]
        if first[0] == "generate":
            expect = {"action": "generate", "prompt": first[1].caption()}
        else:
            expect = {"action": "edit", "image": first[1] or "", "instruction": first[2]}
        self.messages.extend(self.run_jobs(jobs, fail))
        return text, expect


def history_messages(images: list[dict]) -> list[dict]:
    """The conversation so far, for a request made after `images` were drawn: each picture as a
    request, its call, the tool message and the closing text (as in training)."""
    messages = []
    for i, image in enumerate(images):
        name, prompt = image["name"], image["prompt"]
        assert name == f"#{i + 1}"
        messages.append({"role": "user", "content": f"draw {prompt}"})
        messages.append(tool_call("generate_image", {"prompt": prompt}))
        messages.append(tool_result({"image": name, "prompt": prompt}))
        messages.append({"role": "assistant", "content": f"Here is {name}: {prompt}."})
    return messages


def with_system(messages: list[dict]) -> list[dict]:
    return [{"role": "system", "content": PROTOCOL["system"]}] + messages
