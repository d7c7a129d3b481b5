"""The pure core: arrays and tensors in, arrays and tensors out. No file I/O here."""
