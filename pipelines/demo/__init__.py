"""The deterministic Minhang demo dataset: every source layer of the catalog, generated from a seed.

Public API: :func:`pipelines.demo.build.build_demo` and :func:`pipelines.demo.build.load_demo`.
"""
