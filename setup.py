"""The build: metadata lives in setup.cfg; this only declares the optional native extensions: the
word-count kernel and the result encoder.

``optional=True``: without a C compiler or Python headers the build warns and the package still installs, and
actors/jobs/kernel.py falls back to its pure-Python path (the actors log which one they use).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "actors.jobs._wordcount",
            ["actors/jobs/_wordcount.c"],
            depends=["actors/jobs/_utf8.h"],
            optional=True,
        ),
        Extension(
            "actors.jobs._resultjson",
            ["actors/jobs/_resultjson.c"],
            depends=["actors/jobs/_utf8.h"],
            optional=True,
        ),
    ]
)
