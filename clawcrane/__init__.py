"""ClawCrane: top-down text-based video object segmentation (ClawCraneNet), staged and cached.

Shape glossary, used in every module (``B, N, D = obj.shape  # (B, N, D) ...``):

    B  batch (samples or frames in a mini-batch)
    T  frames of a video
    K  candidates in a frame (or rows of a candidate table)
    N  candidates after padding to the largest frame of a batch
    H, W  frame height and width in pixels (original resolution unless said otherwise)
    h, w  feature-map height and width
    C  channels of a pooled visual feature
    D  embedding width of the joint vision-language space
    L  words in a sentence (at most 20)
    E  word-embedding width; S  sentence-state width of the bi-LSTM
    P  position vector width (10: x_min, y_min, x_max, y_max, x_c, y_c, w, h, r_x, r_y)
    Q  queries
"""

__version__ = "0.1.0"
