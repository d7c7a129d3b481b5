"""The synthetic referring-video benchmark (`clawcrane data synth`), written in the A2D layout.

Coloured shapes move over textured, noisy backgrounds, occlude one another, leave fading
trails and pass through shadows; every sentence is checked against the generator's own scene to
single out its object. Query types, each needing a different ClawCraneNet module:
appearance (mask-pooled features), position (PRM), relation (TSRM), motion (the trail),
temporal (TRM: the shadow hides the cue in some frames).

Modules: ``scene`` (vocabulary, objects, motifs, sampling), ``geometry`` (label maps,
visibility), ``sentences`` (queries and their uniqueness checks), ``render`` (frames, preview),
``generate`` (presets, plans, one checked video), ``writer`` (the A2D files), ``presets`` (which
world a preset belongs to). The subpackage ``hard`` is a second world without these shortcuts
(no trails, eight directions and speeds, size queries, occlusion, lighting drift, close shades,
varied wording with a test-only paraphrase split): presets hard-tiny, hard, hard-full.
"""
