"""factory: build DeBERTa-v3 model families, from raw text to a published Hugging Face model."""

__version__ = "0.1.0"
