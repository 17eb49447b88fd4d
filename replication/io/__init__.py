"""Reading and writing the contract file formats (see ../shared/CONTRACTS.md)."""
from replication.io.atomic import (atomic_path, atomic_paths, check_writable, is_temporary, write_bytes, write_json,
                                  write_outputs, write_table, write_text)
from replication.io.tables import (
    load_accuracy_table,
    load_annotations,
    load_correctness,
    read_table,
)

__all__ = [
    "atomic_path",
    "atomic_paths",
    "check_writable",
    "is_temporary",
    "write_outputs",
    "write_bytes",
    "write_json",
    "write_table",
    "write_text",
    "read_table",
    "load_annotations",
    "load_correctness",
    "load_accuracy_table",
]
