"""Models derived from a published (or earlier) one by changing its vocabulary (docs/derive.md):

    trim.py        `factory trim`: cut to the pieces some languages use (spm.model rewritten, rows sliced)
    transplant.py  `factory transplant`: moved onto another vocabulary (shared rows copied, new ones FVT or random)
    networks.py    the networks of a model in any layout and their per-vocabulary tensors, read and written back
    common.py      the source model, the sizes before and after, the output folder and its manifest
    config.py      the options of both commands; manifest.py: what factory.json records of the derivation

Continued pre-training of the result is `factory pretrain --init-from` (factory/pretrain/start.py).
"""
