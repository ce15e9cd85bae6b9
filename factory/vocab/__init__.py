"""`factory vocab`: a SentencePiece vocabulary from a corpus, with the Hugging Face tokenizer files.
    train.py     the step: sample the corpus (factory/corpus), normalisation rules, SentencePiece, the files
    report.py    how a vocabulary cuts each language's text (`vocab_report.{json,md}`, `factory vocab report`)
    spm_file.py  spm.model's protobuf, read and rewritten without sentencepiece (factory trim uses it)
The tokenizer files a model folder carries are read and written by factory/model/tokenizer.py. This `__init__`
imports nothing, so the step's config loads without the step's code.
"""
