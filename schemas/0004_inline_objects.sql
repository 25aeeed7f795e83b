-- brr store, schema version 4: small objects live in the database.
--
-- An object of at most 16 KiB (sources, trees, action keys, artifacts, most
-- logs) is stored here, in the same transaction as its `objects` row,
-- instead of as a file in `cas/`. A build of many small actions otherwise
-- spends most of its time creating, syncing and naming one file per object;
-- SQLite reads blobs of this size faster than the file system does. Larger
-- objects keep their files. An object is in the store when it has an
-- `objects` row; its bytes are here or in `cas/`.
CREATE TABLE object_data (
    hash BLOB PRIMARY KEY NOT NULL CHECK (length(hash) = 32),
    data BLOB NOT NULL
);
