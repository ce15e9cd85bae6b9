"""Corpora: read text from files, folders or the Hub, clean it, keep the wanted languages, route it per
language, and (for `factory vocab`) sample languages. One pipeline for `vocab` and `shards` alike:

- reading.py: sources (`lang=SOURCE`, files, folders, `hf:` streams), their units, the documents;
- cleaning.py: NFKC + whitespace + length bounds, and the fixed-memory exact-duplicate filter;
- pipeline.py: chunks of documents through worker processes (clean, language id, routing, tokenising);
- sampling.py: the vocabulary's spools and its p_i ∝ n_i^alpha sample.
"""

from factory.corpus.cleaning import Cleaning, SeenFilter, filter_keys
from factory.corpus.pipeline import (
    HINTS,
    REASONS,
    Chunk,
    CorpusStats,
    LanguageFilter,
    Pipeline,
    Workers,
    chunks,
    nothing_kept,
    process_chunk,
)
from factory.corpus.reading import (
    JSONL_SUFFIXES,
    TABLE_SUFFIXES,
    TEXT_SUFFIXES,
    Source,
    Unit,
    check_apart,
    open_stream,
    read_file,
    read_source,
    read_unit,
    source_files,
    source_units,
    text_size,
)
from factory.corpus.sampling import SampleResult, build_sample, collect, sample_sizes, write_sample

__all__ = [
    "HINTS", "JSONL_SUFFIXES", "REASONS", "TABLE_SUFFIXES", "TEXT_SUFFIXES", "Chunk", "Cleaning", "CorpusStats",
    "LanguageFilter", "Pipeline", "SampleResult", "SeenFilter", "Source", "Unit", "Workers", "build_sample",
    "check_apart", "chunks", "collect", "filter_keys", "nothing_kept", "open_stream", "process_chunk", "read_file",
    "read_source",
    "read_unit", "sample_sizes", "source_files", "source_units", "text_size", "write_sample",
]  # fmt: skip
