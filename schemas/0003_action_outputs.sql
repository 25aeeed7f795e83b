-- brr store, schema version 3: the action cache also names the output tree
-- of each artifact, so a cache hit can recompute the artifact (outputs plus
-- the current service manifest) without reading the artifact object back.
-- NULL for rows written before this migration; readers then fall back to
-- the artifact object.
ALTER TABLE action_cache ADD COLUMN outputs BLOB CHECK (outputs IS NULL OR length(outputs) = 32);
