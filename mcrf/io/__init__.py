"""Files mcrf writes (standard library only).

- ``outputs``: the one output writer (atomic for files, in place for devices/FIFOs, never over the input);
- ``files``: the JSON writer and the atomic directory writer, over ``outputs``;
- ``runfolder``: the run-folder lock and the guard over train's outputs.
"""
