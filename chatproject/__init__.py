import os

# NumPy's OpenBLAS starts a thread per core and lets them spin after each product: measured, a
# turn's guardrail vote and embedding then burned as much CPU again on the other core, the core
# the event loop, PostgreSQL and the other threads need. One thread (before NumPy is imported,
# which is why it is set here, where every entry point passes first).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from chatproject.celery import app as celery_app

__all__ = ["celery_app"]
