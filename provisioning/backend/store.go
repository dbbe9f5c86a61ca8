package backend

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite", pure Go
)

// Sentinel errors; test with errors.Is.
var (
	// ErrIDConflict: the event id is already stored for another device.
	// Event ids are random UUIDs (firmware/tap), so this is a device
	// replaying or guessing another's id, never a re-delivery; the first
	// row is kept.
	ErrIDConflict = errors.New("backend: event id already stored for another device")
	// ErrStorage wraps every failure to store an event (disk full, I/O
	// error, database locked beyond the busy timeout). The listener stops
	// consuming when it sees one (see Listener).
	ErrStorage = errors.New("backend: storage failed")
)

// schemaVersion is stored in PRAGMA user_version.
const schemaVersion = 1

// busyTimeout is how long a writer waits for another connection's (or
// another process's) write lock before failing with SQLITE_BUSY: several
// listeners may share one database file (README: growing past one backend); a commit takes a
// few milliseconds (one fsync), so waiting this long means something is
// stuck.
const busyTimeout = 10 * time.Second

// timeLayout is how times are stored: UTC, fixed width, so that text order
// is time order for years 0000-9999 (DecodeEvent refuses others) and the
// file stays readable with the sqlite3 shell.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

const createSchema = `
CREATE TABLE IF NOT EXISTS events (
	event_id    TEXT NOT NULL PRIMARY KEY,
	device_id   TEXT NOT NULL,
	time        TEXT NOT NULL, -- the event's time, timeLayout (UTC)
	outcome     TEXT NOT NULL,
	reason      TEXT NOT NULL,
	profile     TEXT NOT NULL,
	schema      TEXT NOT NULL,
	topic       TEXT NOT NULL,
	received_at TEXT NOT NULL, -- timeLayout (UTC)
	payload     BLOB NOT NULL  -- the message as received
);
CREATE INDEX IF NOT EXISTS events_time ON events (time);
CREATE INDEX IF NOT EXISTS events_device_time ON events (device_id, time);
CREATE INDEX IF NOT EXISTS events_outcome_time ON events (outcome, time);
`

// Store is the backend's event database, one SQLite file. Its methods are
// safe for concurrent use; several Stores (in one or several processes on
// one machine) may open the same file.
type Store struct {
	db   *sql.DB
	path string
	wmu  sync.Mutex // one writer at a time in this process; others wait on SQLite's lock
}

// Open opens or creates the database at path. The file is created 0600
// (events carry pseudonymous card ids).
//
// Every connection runs in WAL mode with synchronous=FULL: "With
// synchronous=FULL in WAL mode, an additional sync operation of the WAL
// file happens after each transaction commit ... ensure that transactions
// are durable across a power loss" (sqlite.org/pragma.html#pragma_synchronous);
// NORMAL would lose the last commits on power loss, and the listener
// acknowledges a message to the broker once its INSERT has committed. WAL
// lets `kazashictl events` read while a listener writes. WAL needs all
// users of the file on one machine (sqlite.org/wal.html: it does not work
// over a network file system).
func Open(ctx context.Context, path string) (*Store, error) {
	return open(ctx, path, nil)
}

// open is Open with extra per-connection pragmas (tests use max_page_count
// to make the disk "full").
func open(ctx context.Context, path string, pragmas []string) (*Store, error) {
	if path == "" {
		return nil, errors.New("backend: empty database path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("backend: %w", err)
	}
	// SQLite creates files 0644; create it first so it is 0600 (and the
	// -wal and -shm files SQLite derives from it get the same mode).
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("backend: open database: %w", err)
	}
	f.Close()

	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	dsn := (&url.URL{Scheme: "file", Path: abs, RawQuery: q.Encode()}).String()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("backend: open database %s: %w", path, err)
	}
	s := &Store{db: db, path: path}
	if err := s.init(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) init(ctx context.Context) error {
	var mode string
	if err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("backend: open database %s: %w", s.path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("backend: open database %s: journal mode is %q, not WAL", s.path, mode)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var v int
	if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("backend: open database %s: %w", s.path, err)
	}
	switch {
	case v == schemaVersion:
		return nil
	case v > schemaVersion:
		return fmt.Errorf("backend: database %s has schema version %d; this kazashictl knows up to %d", s.path, v, schemaVersion)
	case v != 0:
		return fmt.Errorf("backend: database %s has unknown schema version %d", s.path, v)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("backend: create schema: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, createSchema); err != nil {
		return fmt.Errorf("backend: create schema: %w", err)
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
		return fmt.Errorf("backend: create schema: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("backend: create schema: %w", err)
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Insert stores ev unless an event with its id is stored already. It
// reports whether ev was new; a duplicate (the broker re-delivering after
// a lost PUBACK, the kiosk re-sending after a lost PUBACK of its own) is
// not an error and leaves the first copy. The same id from another device
// is ErrIDConflict. Any other failure wraps ErrStorage. When Insert
// returns nil the row is durable (see Open).
func (s *Store) Insert(ctx context.Context, ev Received) (inserted bool, err error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	res, err := s.db.ExecContext(ctx, `INSERT OR IGNORE INTO events
		(event_id, device_id, time, outcome, reason, profile, schema, topic, received_at, payload)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ev.EventID, ev.DeviceID, ev.Time.UTC().Format(timeLayout), ev.Outcome, ev.Reason, ev.Profile,
		ev.Schema, ev.Topic, ev.ReceivedAt.UTC().Format(timeLayout), ev.Payload)
	if err != nil {
		return false, fmt.Errorf("%w: insert event: %w", ErrStorage, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("%w: insert event: %w", ErrStorage, err)
	}
	if n == 1 {
		return true, nil
	}
	var device string
	if err := s.db.QueryRowContext(ctx, "SELECT device_id FROM events WHERE event_id = ?", ev.EventID).Scan(&device); err != nil {
		return false, fmt.Errorf("%w: look up duplicate event: %w", ErrStorage, err)
	}
	if device != ev.DeviceID {
		return false, ErrIDConflict
	}
	return false, nil
}

// Filter selects events for Query and Count. Zero fields select all.
type Filter struct {
	Since   time.Time // events whose own time is at or after Since
	Outcome string
	Reason  string
	Device  string
	Limit   int // Query only: at most this many rows (0: all)
}

// Row is one stored event. Its JSON form (kazashictl events --json) holds
// the stored columns only: the payload carries the card's pseudonyms and
// is left out.
type Row struct {
	EventID    string          `json:"event_id"`
	DeviceID   string          `json:"device_id"`
	Time       time.Time       `json:"time"`
	Outcome    string          `json:"outcome"`
	Reason     string          `json:"reason"`
	Profile    string          `json:"profile,omitempty"`
	Schema     string          `json:"schema"`
	Topic      string          `json:"topic"`
	ReceivedAt time.Time       `json:"received_at"`
	Payload    json.RawMessage `json:"-"`
}

func (f Filter) where() (string, []any) {
	var conds []string
	var args []any
	if !f.Since.IsZero() {
		conds = append(conds, "time >= ?")
		args = append(args, f.Since.UTC().Format(timeLayout))
	}
	for _, c := range []struct{ col, v string }{{"outcome", f.Outcome}, {"reason", f.Reason}, {"device_id", f.Device}} {
		if c.v != "" {
			conds = append(conds, c.col+" = ?")
			args = append(args, c.v)
		}
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// Query returns the events matching f, newest first by the event's own
// time (then by reception time and id, so the order is total).
func (s *Store) Query(ctx context.Context, f Filter) ([]Row, error) {
	if f.Limit < 0 {
		return nil, errors.New("backend: negative limit")
	}
	where, args := f.where()
	q := `SELECT event_id, device_id, time, outcome, reason, profile, schema, topic, received_at, payload
		FROM events` + where + ` ORDER BY time DESC, received_at DESC, event_id DESC`
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("backend: query events: %w", err)
	}
	defer rows.Close()
	var out []Row
	for rows.Next() {
		var r Row
		var t, rt string
		var payload []byte
		if err := rows.Scan(&r.EventID, &r.DeviceID, &t, &r.Outcome, &r.Reason, &r.Profile, &r.Schema, &r.Topic, &rt, &payload); err != nil {
			return nil, fmt.Errorf("backend: query events: %w", err)
		}
		if r.Time, err = time.Parse(timeLayout, t); err != nil {
			return nil, fmt.Errorf("backend: event %s: stored time: %w", r.EventID, err)
		}
		if r.ReceivedAt, err = time.Parse(timeLayout, rt); err != nil {
			return nil, fmt.Errorf("backend: event %s: stored received_at: %w", r.EventID, err)
		}
		r.Payload = payload
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("backend: query events: %w", err)
	}
	return out, nil
}

// Count returns how many events match f (ignoring f.Limit).
func (s *Store) Count(ctx context.Context, f Filter) (int, error) {
	where, args := f.where()
	var n int
	if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM events"+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("backend: count events: %w", err)
	}
	return n, nil
}
