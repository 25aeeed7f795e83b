-- brr store, schema version 5: small objects are appended to pack files.
--
-- Objects of at most `PACKED_MAX` bytes are no longer written into the
-- database: with write-ahead logging every byte was written twice (to the
-- log, then to the database by the checkpoint), which was the largest cost
-- of storing a build's sources and outputs. They are appended to
-- `packs/<name>`, one append-only file per writing process; the object's
-- row, with its pack and offset (the length is `size`), is committed only
-- after that file was synced past the object's end. The location is kept in
-- `objects` itself: a second table keyed by hash doubled the pages every
-- insert touches.
--
-- `object_data` rows written by schema 4 are still read; nothing new is
-- written there.
CREATE TABLE packs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE CHECK (name NOT LIKE '%/%' AND name NOT IN ('', '.', '..'))
);

-- Both NULL for objects whose bytes are a file in `cas/` or a row of
-- `object_data`.
ALTER TABLE objects ADD COLUMN pack INTEGER REFERENCES packs (id);
ALTER TABLE objects ADD COLUMN pack_offset INTEGER CHECK (pack_offset >= 0);
