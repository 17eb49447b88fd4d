"""Adjusted replication accuracy: the method registry and the estimators."""
from replication.estimators.registry import METHODS, Adjusted, register_method

__all__ = ["METHODS", "Adjusted", "register_method"]
