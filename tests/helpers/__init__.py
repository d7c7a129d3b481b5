"""Test helpers: tiny worlds, datasets and independent checkers that the tests build and read.

* ``dataset_builders``: A2D / J-HMDB / Ref-YouTube-VOS folders and clips written by the tests;
* ``head_world``: a dataset with caches whose pooled features carry planted colours (head tests);
* ``detect_world``, ``extract_world``: datasets and detectors for the detect and extract stages;
* ``drawn_shapes``: frames with drawn shapes and their masks (detector tests);
* ``synth_checker``, ``synth_checker_hard``: independent grammars that re-check every synthetic sentence;
* ``max_score_evaluator``: an independent A2D evaluator with MTTR's tie rule.
"""
