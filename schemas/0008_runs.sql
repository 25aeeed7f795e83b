-- brr store, schema version 8: runs of releases, as `brr run` supervises them.
--
-- A run names what it runs by release hash only (`run_processes.release`);
-- `asked` keeps what the user typed (an environment or a hash prefix) for
-- display. The supervisor updates `run_processes` as its processes change
-- state, appends to `run_events` (starts, exits, readiness, switches), and
-- holds a lock on `runs/<id>.lock` in the store folder while it lives: a run
-- with no `ended_ms` whose lock is free lost its supervisor (`kill -9`).
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    asked TEXT NOT NULL,
    supervisor_pid INTEGER NOT NULL,
    started_ms INTEGER NOT NULL,
    ended_ms INTEGER,
    outcome TEXT CHECK (outcome IS NULL OR outcome IN ('stopped', 'forced', 'failed'))
);

CREATE TABLE run_processes (
    run INTEGER NOT NULL REFERENCES runs (id),
    release BLOB NOT NULL CHECK (length(release) = 32),
    process TEXT NOT NULL,
    instance INTEGER NOT NULL CHECK (instance >= 1),
    port INTEGER,
    pid INTEGER,
    state TEXT NOT NULL
        CHECK (state IN ('starting', 'running', 'ready', 'backoff', 'failed', 'stopping', 'stopped', 'exited')),
    restarts INTEGER NOT NULL DEFAULT 0,
    last_exit TEXT,
    started_ms INTEGER,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (run, release, process, instance)
) WITHOUT ROWID;

CREATE TABLE run_events (
    id INTEGER PRIMARY KEY,
    run INTEGER NOT NULL REFERENCES runs (id),
    release BLOB NOT NULL CHECK (length(release) = 32),
    process TEXT NOT NULL,
    instance INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    event TEXT NOT NULL CHECK (event IN ('start', 'exit', 'ready', 'backoff', 'failed', 'stop')),
    detail TEXT
);
CREATE INDEX run_events_by_run ON run_events (run, id);
