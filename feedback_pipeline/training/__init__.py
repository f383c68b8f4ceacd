"""Training-based candidates (the optional `train` extra: torch, transformers, trl).

Modules here import the heavy libraries inside functions, so importing them without the extra
installed works and the missing extra is reported when a candidate is actually used.
"""
