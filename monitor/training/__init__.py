"""FPNet distillation: mine crops with the cascade, label them with the teachers, train, evaluate.

A training-only package: it needs onnxruntime (the `train` extra), which the monitor itself never
imports. Every step caches its output in a work folder outside the repository, so a killed run
resumes where it stopped.
"""
