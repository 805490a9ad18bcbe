"""The build: metadata lives in setup.cfg; this only declares the optional native extensions of word count: the
kernel (one extension built from the ``_wc_*.c`` sources) and the result encoder.

``optional=True``: without a C compiler or Python headers the build warns and the package still installs, and
actors/jobs/wordcount/kernel.py falls back to its pure-Python path (the actors log which one they use).
"""

from glob import glob

from setuptools import Extension, setup

WORDCOUNT = "actors/jobs/wordcount"
HEADERS = sorted(glob(f"{WORDCOUNT}/*.h"))

setup(
    ext_modules=[
        Extension(
            "actors.jobs.wordcount._wordcount",
            sorted(glob(f"{WORDCOUNT}/_wc_*.c")),
            depends=HEADERS,
            optional=True,
        ),
        Extension(
            "actors.jobs.wordcount._resultjson",
            [f"{WORDCOUNT}/_resultjson.c"],
            depends=HEADERS,
            optional=True,
        ),
    ]
)
