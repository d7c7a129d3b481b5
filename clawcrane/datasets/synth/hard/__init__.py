"""The hard synthetic world (presets hard-tiny, hard, hard-full): the same A2D layout, no shortcuts.

What changes from the original world (``synth``), and why:

* motion shows only across frames: no trails, no blur; eight directions and static, three speed
  bands, 'the faster / slower X'; objects of the motion motifs get their mid-clip centre drawn
  whatever their velocity (``motion``), so where an object is says nothing about where it goes;
* a sixth query type, ``size`` ('the bigger X', 'the smallest of the three Xs'): sizes are
  continuous, so appearance sentences name shape and shade only;
* position and ordinals among look-alikes ('the second X from the right', 'the middle X');
* objects pass behind others and vanish for a few frames (``occlusion``), query targets included;
* lighting drift over a clip, close shades (red / orange, blue / teal, purple / pink) with a
  per-object jitter (``palette``);
* *foils* (``foils``): an object of another look that the clause alone would pick, so the noun
  phrase has to be read;
* several templates and synonyms per meaning, and a paraphrase split: a documented list of
  wordings appears only in test sentences (``wording``); query_types.csv gets a 4th column,
  ``wording`` (seen | paraphrase).

Modules, one concept each: ``palette`` (shades, jitter, light), ``motion`` (directions, speeds,
direction-free placement), ``builder`` (looks and object specs), ``placement`` (motifs and
fillers), ``foils``, ``occlusion``, ``sampling`` (one scene), ``meaning`` (canonical meanings),
``checks`` (the generator's uniqueness checks), ``wording`` (sentences, paraphrase split),
``generate`` (presets, plans, one checked video), ``records`` (synth_scenes.json entries).
"""
