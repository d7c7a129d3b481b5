"""synth_scenes.json entries of hard videos: the common record plus shades, speeds, light and meanings.

On top of ``writer.video_record``: per object ``shade`` (its colour name, also in ``colour``),
``rgb`` (the drawn body colour: the shade plus its jitter, before the lighting), ``speed``
(px/frame) and ``direction`` (``motion.direction_label``; ``motion`` holds the same label);
``size`` is dropped (sizes are continuous: see ``radius``). Per video ``lighting`` (the
``scene.Lighting`` fields) and ``trails`` (false). Per query ``meaning`` (``Meaning.to_json``),
``wording`` (template id, held-out ids, label) and ``paraphrase`` (true when the sentence uses
held-out wording).
"""

from __future__ import annotations

from clawcrane.datasets.synth import writer
from clawcrane.datasets.synth.generate import SynthVideo
from clawcrane.datasets.synth.hard.motion import direction_label, speed_of

HARD_CONVENTIONS = {
    **writer.CONVENTIONS,
    "colour": "shade name, the word sentences use (also in 'shade'); 'rgb' is the drawn body colour "
              "(the shade plus a per-object jitter) before the lighting",
    "direction": "'static', one of right, down-right, down, down-left, left, up-left, up, up-right (within 15 "
                 "degrees), or null when unclear; 'motion' holds the same label; 'speed' in px/frame",
    "lighting": "frame t is scaled per channel by gain * (1 + warm, 1, 1 - warm), gain and warm moving from "
                "gain0/warm0 (frame 0) to gain1/warm1 (last frame) along a smoothstep",
    "meaning": "the query's canonical meaning (clawcrane.datasets.synth.hard.meaning)",
    "wording": "template id, held-out wording ids used, label 'seen' or 'paraphrase' (query_types.csv's 4th column)",
}


def hard_video_record(video: SynthVideo) -> dict:
    """The video's entry of synth_scenes.json (see the module docstring)."""
    rec = writer.video_record(video)
    for entry, o in zip(rec["objects"], video.scene.objects):
        label = direction_label(o.velocity)
        entry.pop("size", None)
        entry.update(shade=o.colour, rgb=list(o.rgb) if o.rgb is not None else None,
                     speed=round(speed_of(o.velocity), 3), direction=label, motion=label)
    light = video.scene.lighting
    rec["lighting"] = None if light is None else {k: getattr(light, k) for k in ("gain0", "gain1", "warm0", "warm1")}
    rec["trails"] = video.scene.trails
    for entry, q in zip(rec["queries"], video.queries):
        entry.update(meaning=q.meaning.to_json(), wording=q.wording.to_json(), paraphrase=bool(q.wording.held_out))
    return rec
