"""What a hard query says, independent of its wording: the canonical meaning.

A meaning is a noun phrase for the target (its shape, and its shade name when needed) plus what
singles it out. Its JSON form (``Meaning.to_json``, stored per query in synth_scenes.json as
``meaning``) has ``type`` and ``target`` ({'shape', 'colour'?}) and, per type:

* appearance, temporal: nothing more (the noun phrase alone is unique, in lit frames for temporal);
* position: ``axis`` ('x' | 'y'), ``end`` ('left' | 'right' | 'top' | 'bottom' | 'middle') and
  ``rank`` (0-based from that end; 'middle': rank 1 of exactly 3 forming a row, axis 'x'),
  counted among the objects matching the noun phrase only;
* size: ``extreme`` ('largest' | 'smallest') and ``group`` (2: worded as a comparative, 'the
  bigger X'; 3: as a superlative, 'the biggest X'), among the objects matching the noun phrase;
* relation: ``relation`` ('next to' | 'above' | 'below' | 'left of' | 'right of') and
  ``reference`` (a noun phrase matching exactly one object);
* motion: ``motion`` (a ``motion.DIRECTIONS`` label or 'static'), or ``speed`` ('faster' |
  'slower') with ``group`` 2.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class NounPhrase:
    """The words naming a set of look-alikes: a shape, and a shade when the shape is not enough."""

    shape: str
    """'circle', 'square', 'triangle' or 'diamond' (the canonical name, whatever word is used)."""
    colour: str | None = None
    """A shade name of ``palette.SHADES``, or None when the noun phrase names the shape only."""

    def to_json(self) -> dict:
        return {"shape": self.shape} if self.colour is None else {"shape": self.shape, "colour": self.colour}


@dataclass(frozen=True, kw_only=True)
class Meaning:
    """The canonical meaning of one hard query (see the module docstring for each type's fields)."""

    query_type: str
    """'appearance', 'position', 'size', 'relation', 'motion' or 'temporal'."""
    target: NounPhrase
    """The noun phrase naming the target and its look-alikes."""
    axis: str | None = None
    """position: 'x' or 'y'."""
    end: str | None = None
    """position: 'left', 'right', 'top', 'bottom', or 'middle'."""
    rank: int | None = None
    """position: 0-based rank from ``end``."""
    extreme: str | None = None
    """size: 'largest' or 'smallest'."""
    group: int | None = None
    """size, speed: how many look-alikes are compared (2: comparative, 3: superlative)."""
    relation: str | None = None
    """relation: 'next to', 'above', 'below', 'left of' or 'right of' ('target REL reference')."""
    reference: NounPhrase | None = None
    """relation: the reference's noun phrase (matches exactly one object)."""
    motion: str | None = None
    """motion: a direction label ('right', 'down-right', ...) or 'static'."""
    speed: str | None = None
    """motion: 'faster' or 'slower' (of two look-alikes)."""

    def to_json(self) -> dict:
        out: dict = {"type": self.query_type, "target": self.target.to_json()}
        for key in ("axis", "end", "rank", "extreme", "group", "relation", "motion", "speed"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.reference is not None:
            out["reference"] = self.reference.to_json()
        return out

    @staticmethod
    def from_json(data: dict) -> Meaning:
        np_ = NounPhrase(**data["target"])
        ref = NounPhrase(**data["reference"]) if "reference" in data else None
        rest = {k: v for k, v in data.items() if k not in ("type", "target", "reference")}
        return Meaning(query_type=data["type"], target=np_, reference=ref, **rest)
