"""Where a spec or a checkpoint payload becomes a ready module (the floor between stages and the core).

``stages/`` ask this floor for models; it reads payloads and weight files through ``cache/`` and
the bottom floor, and builds the pure modules of ``pipeline/``:

* ``device``: one ``resolve_device`` for every ``--device`` option;
* ``heads``: the head-size registry, a fresh head, a head rebuilt from a checkpoint payload or
  file, and the checkpoint a ``--head`` value names;
* ``text``: a trained head's text inputs (word ids, or frozen MiniLM states from the text cache);
* ``detectors``: ``--detector`` spec parsing, its cache key, the detector it names (Mask R-CNN from
  a checkpoint or torchvision's COCO weights, the oracle, imported masks);
* ``backbones``: ``--backbone`` resolution, ImageNet weight discovery, and the frozen backbone.
"""
