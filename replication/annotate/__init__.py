"""Collecting selection-frequency votes under Recht et al.'s protocol.

* :mod:`~replication.annotate.plan` -- annotation tasks (48 images, 3 + 3 controls, N annotators each);
* :mod:`~replication.annotate.votes` -- the votes table and the annotations counted from it, with quality
  control (plain pandas, no web stack);
* :mod:`~replication.annotate.db`, :mod:`~replication.annotate.store`, :mod:`~replication.annotate.assign` --
  the votes database (SQLite or PostgreSQL) and who gets which task;
* :mod:`~replication.annotate.app` -- the annotators' web application (``create_app``; needs the
  ``annotate`` extra);
* :mod:`~replication.annotate.hits` -- the crowd-platform route (HIT forms, batch CSV, results import);
* :mod:`~replication.annotate.select` -- drawing the replication set from the annotated candidates;
* :mod:`~replication.annotate.folders` -- listing image folders into the table ``plan`` reads.

Importing this package imports nothing heavy; import the modules you need.
"""
