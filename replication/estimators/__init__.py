"""Adjusted replication accuracy: the method registry and the estimators."""
from replication.estimators.registry import METHODS, Adjusted, register_method
from replication.estimators import naive as _naive, jackknife as _jackknife  # noqa: F401  (fill METHODS)

__all__ = ["METHODS", "Adjusted", "register_method"]
