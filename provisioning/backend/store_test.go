package backend

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func openStore(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// received decodes a real tap event, as the listener would.
func received(t testing.TB, device, id string, at time.Time, reason string, recv time.Time) Received {
	t.Helper()
	ev, err := DecodeEvent("kazashi/"+device+"/events", mustJSON(t, tapEvent(device, id, at, reason)))
	if err != nil {
		t.Fatal(err)
	}
	ev.ReceivedAt = recv
	return ev
}

func TestStoreIsDurableAndPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	s := openStore(t, path)
	ctx := context.Background()
	// Check on several pool connections at once: synchronous is a
	// per-connection setting, so every connection must have it.
	conns := make([]interface{ Close() error }, 0, 3)
	for range 3 {
		c, err := s.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		var mode string
		var sync, busy int
		if err := c.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if err := c.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
			t.Fatal(err)
		}
		if err := c.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&busy); err != nil {
			t.Fatal(err)
		}
		if mode != "wal" || sync != 2 || busy != int(busyTimeout.Milliseconds()) { // 2 = FULL
			t.Errorf("journal_mode=%s synchronous=%d busy_timeout=%d, want wal, 2 (FULL), %d", mode, sync, busy, busyTimeout.Milliseconds())
		}
	}
	for _, c := range conns {
		c.Close()
	}
	if _, err := s.Insert(ctx, received(t, "kiosk-01", "e-1", evTime, "ok", evTime)); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{path, path + "-wal"} {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", filepath.Base(f), st.Mode().Perm())
		}
	}
}

func TestStoreInsertDeduplicates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	s := openStore(t, path)
	ctx := context.Background()
	first := received(t, "kiosk-01", "e-1", evTime, "ok", evTime.Add(time.Second))
	if ins, err := s.Insert(ctx, first); err != nil || !ins {
		t.Fatalf("first Insert = %v, %v; want true, nil", ins, err)
	}
	// A re-delivery (even with other content) keeps the first copy.
	again := received(t, "kiosk-01", "e-1", evTime.Add(time.Hour), "revoked", evTime.Add(time.Minute))
	if ins, err := s.Insert(ctx, again); err != nil || ins {
		t.Fatalf("duplicate Insert = %v, %v; want false, nil", ins, err)
	}
	// The same id from another device is not a re-delivery.
	other := received(t, "kiosk-02", "e-1", evTime, "ok", evTime)
	if ins, err := s.Insert(ctx, other); !errors.Is(err, ErrIDConflict) || ins {
		t.Fatalf("Insert from another device = %v, %v; want false, ErrIDConflict", ins, err)
	}
	s.Close()

	// Reopened: the row is there as first stored.
	s = openStore(t, path)
	rows, err := s.Query(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("%d rows, want 1", len(rows))
	}
	r := rows[0]
	if r.EventID != "e-1" || r.DeviceID != "kiosk-01" || !r.Time.Equal(evTime) || r.Reason != "ok" ||
		r.Outcome != "accepted" || r.Profile != "jpki-auth" || !r.ReceivedAt.Equal(first.ReceivedAt) ||
		string(r.Payload) != string(first.Payload) || r.Topic != "kazashi/kiosk-01/events" {
		t.Errorf("stored row = %+v", r)
	}
}

func TestStoreRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	s := openStore(t, path)
	if _, err := s.db.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(context.Background(), path); err == nil {
		t.Fatal("Open accepted a database with a newer schema")
	}
}

func TestStoreQueryFilters(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "events.db"))
	ctx := context.Background()
	base := evTime
	type ev struct {
		id, device, reason string
		ago                time.Duration
	}
	evs := []ev{
		{"a", "kiosk-01", "ok", 10 * time.Minute},
		{"b", "kiosk-01", "revoked", 20 * time.Minute},
		{"c", "kiosk-02", "revoked", 30 * time.Minute},
		{"d", "kiosk-02", "ok", 2 * time.Hour},
		{"e", "kiosk-01", "revoked", 3 * time.Hour},
		{"f", "kiosk-03", "crl-unavailable", 40 * time.Minute}, // outcome error
		{"g", "kiosk-01", "expired", time.Hour},                // exactly at the bound: included
	}
	for _, e := range evs {
		// Received in the reverse order of their times, so the order by
		// event time is not the insertion order.
		if _, err := s.Insert(ctx, received(t, e.device, e.id, base.Add(-e.ago), e.reason, base.Add(e.ago))); err != nil {
			t.Fatal(err)
		}
	}
	since := base.Add(-time.Hour)
	cases := []struct {
		f    Filter
		want []string
	}{
		{Filter{}, []string{"a", "b", "c", "f", "g", "d", "e"}},
		{Filter{Since: since}, []string{"a", "b", "c", "f", "g"}},
		{Filter{Since: since, Outcome: "rejected"}, []string{"b", "c", "g"}},
		{Filter{Outcome: "rejected"}, []string{"b", "c", "g", "e"}},
		{Filter{Device: "kiosk-01"}, []string{"a", "b", "g", "e"}},
		{Filter{Device: "kiosk-01", Outcome: "rejected", Since: since}, []string{"b", "g"}},
		{Filter{Reason: "revoked"}, []string{"b", "c", "e"}},
		{Filter{Outcome: "error"}, []string{"f"}},
		{Filter{Outcome: "rejected", Limit: 2}, []string{"b", "c"}},
		{Filter{Device: "kiosk-99"}, nil},
		// Since in another zone is the same instant.
		{Filter{Since: since.In(time.FixedZone("JST", 9*3600)), Device: "kiosk-02"}, []string{"c"}},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%+v", c.f), func(t *testing.T) {
			rows, err := s.Query(ctx, c.f)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range rows {
				got = append(got, r.EventID)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("Query = %v, want %v", got, c.want)
			}
			n, err := s.Count(ctx, Filter{Since: c.f.Since, Outcome: c.f.Outcome, Reason: c.f.Reason, Device: c.f.Device})
			if err != nil {
				t.Fatal(err)
			}
			if c.f.Limit == 0 && n != len(c.want) {
				t.Errorf("Count = %d, want %d", n, len(c.want))
			}
		})
	}
}
