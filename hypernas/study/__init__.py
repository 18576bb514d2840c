"""A hypernas study: its storage and locks, its record, and the trials several workers share.

- `storage`: opening SQLite or PostgreSQL safely, a lock every worker honours, reading a study;
- `record`: what a study was made with (space, data, hypernetwork), checked on every resume;
- `sync`: the in-memory mirror the sampler steers, and the writer that stores finished batches.

Usage:
    from hypernas.study import load_study, open_storage, study_lock
"""

from hypernas.study.storage import load_study, open_storage, redact, study_lock

__all__ = ["load_study", "open_storage", "redact", "study_lock"]
