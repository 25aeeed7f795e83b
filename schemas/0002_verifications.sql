-- brr store, schema version 2: reproducibility verifications.
--
-- One row per target per `brr verify`: the key that was rebuilt, how many
-- times, whether every round gave the same outputs, the output tree of each
-- round (hex, one per line, in round order) and the paths that differed (one
-- per line). Output trees are CAS objects, so differing rounds can be
-- inspected with `brr show` afterwards.
CREATE TABLE verifications (
    id INTEGER PRIMARY KEY,
    target TEXT NOT NULL,
    key BLOB NOT NULL CHECK (length(key) = 32),
    rounds INTEGER NOT NULL CHECK (rounds >= 1),
    reproducible INTEGER NOT NULL CHECK (reproducible IN (0, 1)),
    outputs TEXT NOT NULL,
    differing TEXT NOT NULL,
    verified_at INTEGER NOT NULL
);
CREATE INDEX verifications_by_target ON verifications (target, id);
