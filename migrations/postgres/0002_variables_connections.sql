-- Variables and connections. A connection's password and extra are Fernet tokens when
-- is_encrypted is set (a key was configured when they were written), plain text otherwise.
CREATE TABLE variables (
    key           TEXT PRIMARY KEY,
    val           TEXT NOT NULL,
    description   TEXT,
    is_encrypted  BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE connections (
    conn_id       TEXT PRIMARY KEY,
    conn_type     TEXT NOT NULL,
    description   TEXT,
    host          TEXT,
    schema        TEXT,
    login         TEXT,
    password      TEXT,
    port          INTEGER,
    extra         TEXT,
    is_encrypted  BOOLEAN NOT NULL DEFAULT FALSE
);
