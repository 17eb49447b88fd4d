"""Candidate study designs and what they cost.

A design fixes the annotators per image, the reference images, the
replication images and the candidate pool the replication set is drawn from
(Recht et al.'s MatchedFrequency, per class). Every candidate in the pool and
every reference image is annotated, so a design costs
``annotators * (reference_images + pool_images)`` votes.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterable, Sequence

from replication.errors import InputError

#: ImageNet's classes
DEFAULT_CLASSES = 1000


@dataclass(frozen=True, order=True)
class Design:
    """One candidate study: ``annotators`` per image on ``reference_images``
    reference images and on a pool of ``pool_images`` candidates, from which
    ``replication_images`` are drawn per class by MatchedFrequency; ``classes``
    classes share the images equally."""

    annotators: int
    reference_images: int
    replication_images: int
    pool_images: int
    classes: int = DEFAULT_CLASSES

    @property
    def votes(self) -> int:
        """Votes to collect: every reference image and every pool candidate, ``annotators`` each."""
        return self.annotators * (self.reference_images + self.pool_images)

    def cost(self, price_per_vote: float) -> float:
        """Money for :attr:`votes` at ``price_per_vote``."""
        return self.votes * float(price_per_vote)

    @property
    def key(self) -> tuple[int, ...]:
        """The integers that seed this design's simulations (so adding designs changes no other)."""
        return (self.annotators, self.reference_images, self.replication_images, self.pool_images, self.classes)

    def label(self) -> str:
        """``n=10 ref=20,000 rep=10,000 pool=120,000``."""
        return (f"n={self.annotators} ref={self.reference_images:,} rep={self.replication_images:,} "
                f"pool={self.pool_images:,}")

    def validate(self) -> None:
        """InputError naming the first impossible field."""
        if self.annotators < 1:
            raise InputError(f"annotators per image must be >= 1, got {self.annotators}")
        for name in ("reference_images", "replication_images", "pool_images"):
            value = getattr(self, name)
            if value < self.classes or value % self.classes:
                raise InputError(f"{name.replace('_', ' ')} {value:,} is not a positive multiple of the "
                                 f"{self.classes} classes (MatchedFrequency draws the same number per class)")
        if self.pool_images < self.replication_images:
            raise InputError(f"a pool of {self.pool_images:,} candidates cannot give {self.replication_images:,} "
                             "replication images")


def parse_pool(values: Iterable[str]) -> list[tuple[float, bool]]:
    """Pool sizes as ``(value, is_factor)``: ``"12x"`` is 12 times the replication
    images, ``"60000"`` an absolute number of candidates."""
    out = []
    for text in values:
        t = str(text).strip().lower()
        try:
            out.append((float(t[:-1]), True) if t.endswith("x") else (float(int(t)), False))
        except ValueError:
            raise InputError(f"pool size {text!r}: give a number of candidates or a multiple like 12x") from None
    return out


def design_grid(annotators: Sequence[int], reference_images: Sequence[int], replication_images: Sequence[int],
                pool: Sequence[str], classes: int = DEFAULT_CLASSES) -> list[Design]:
    """Every combination of the given values, validated, without repeats, sorted."""
    if int(classes) < 1:
        raise InputError(f"classes must be >= 1, got {classes}")
    designs = set()
    for n, ref, rep, (size, factor) in itertools.product(annotators, reference_images, replication_images,
                                                          parse_pool(pool)):
        pool_images = int(round(size * rep)) if factor else int(size)
        d = Design(int(n), int(ref), int(rep), pool_images, int(classes))
        d.validate()
        designs.add(d)
    if not designs:
        raise InputError("the design grid is empty")
    return sorted(designs)
