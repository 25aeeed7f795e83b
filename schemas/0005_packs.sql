-- brr store, schema version 5: small objects are appended to pack files.
--
-- Objects of at most `INLINE_MAX` bytes are no longer written into the
-- database: with write-ahead logging every byte was written twice (to the
-- log, then to the database by the checkpoint), which was the largest cost
-- of storing a build's sources and outputs. They are appended to
-- `packs/<name>`, one append-only file per writing process, and a row of
-- `object_packs` (pack, offset; the length is `objects.size`) is committed
-- only after that file was synced past the object's end.
--
-- `object_data` rows written by schema 4 are still read; nothing new is
-- written there.
CREATE TABLE packs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE CHECK (name NOT LIKE '%/%' AND name NOT IN ('', '.', '..'))
);

CREATE TABLE object_packs (
    hash BLOB PRIMARY KEY NOT NULL CHECK (length(hash) = 32),
    pack INTEGER NOT NULL REFERENCES packs (id),
    offset INTEGER NOT NULL CHECK (offset >= 0)
) WITHOUT ROWID;
