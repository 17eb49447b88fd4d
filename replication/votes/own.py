"""The project's own votes table (``replication annotate export --votes-out``,
or any table in the contract's votes format): one row per vote, counted into
annotations after the same quality control as ``annotate export``
(:func:`replication.annotate.votes.count_votes`), so every source goes through
one path into ``replication bias``.
"""
from __future__ import annotations

import os
from pathlib import Path

from replication.annotate.votes import MIN_CONTROL_ACCURACY, count_votes, validate_votes
from replication.votes._base import Dropped, ImportedVotes, read_frame, report_drops


class OwnVotes:
    """Importer for a votes table (CSV or Parquet).

    Parameters
    ----------
    qc : {"annotator", "submission", "none"}, default="annotator"
        What fails the controls and is dropped: whole annotators, single
        submissions (an annotator's answers to one task), or nothing.
    min_control_accuracy : float in [0, 1], default=0.7
        Share of control answers a unit must get right to be kept.
    """

    def __init__(self, qc: str = "annotator", min_control_accuracy: float = MIN_CONTROL_ACCURACY):
        self.qc = qc
        self.min_control_accuracy = min_control_accuracy

    def read(self, path: str | os.PathLike) -> ImportedVotes:
        """Validate the votes, drop the units failing the controls, and count the
        accepted votes per image (control votes never count)."""
        path, frame = read_frame(path, trust_pickle=False)
        votes = validate_votes(frame, path)
        annotations, report = count_votes(votes, min_control_accuracy=self.min_control_accuracy, level=self.qc,
                                          path=path, validated=True)
        c = report.counts
        dropped = [d for d in (
            Dropped(c["n_label_votes_dropped"], "votes on images to label",
                    f"cast by {self.qc}s with control accuracy below {self.min_control_accuracy:g}"),
            Dropped(c["n_images_without_accepted_votes"], "images", "every vote on them was dropped"),
            Dropped(c["n_votes"] - c["n_label_votes"], "control votes", "controls count only for quality control"),
        ) if d.count]
        return ImportedVotes("votes", Path(path), annotations, None, report_drops("votes", dropped),
                             tuple(report.lines()))
