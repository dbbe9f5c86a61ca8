// Package outbox is the kiosk's durable queue of results waiting for the
// broker: an event is on disk (bbolt, fsynced commit) before its tap counts
// as done, leaves only when the broker acknowledged it, and survives
// SIGKILL and power loss. Messages the broker refuses go to a quarantine
// so the rest keep flowing.
//
// Policy when full: Enqueue refuses the new message (ErrFull) and keeps
// every queued one; the daemon shows "could not be recorded" for that tap
// and raises the alarm in status. Dropping queued results silently would
// lose check-ins that the screen already confirmed.
//
// Layout (bbolt buckets): "queue" maps an 8-byte big-endian sequence
// number to a record (ordered delivery is key order); "ids" maps event id
// to sequence (an event enqueued twice is stored once); "quarantine" holds
// refused records with the reason; "meta" holds the next sequence number.
package outbox

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Errors of Enqueue and friends; branch with errors.Is.
var (
	ErrFull     = errors.New("outbox: full")
	ErrStorage  = errors.New("outbox: storage failed")
	ErrNotFound = errors.New("outbox: no such message")
	ErrClosed   = errors.New("outbox: closed")
)

var (
	bQueue      = []byte("queue")
	bIDs        = []byte("ids")
	bQuarantine = []byte("quarantine")
	bMeta       = []byte("meta")
	kNextSeq    = []byte("next-seq")
	kBytes      = []byte("queued-bytes") // sum of queued payload sizes
	kCount      = []byte("queued-count")
)

// Options bound the outbox.
type Options struct {
	// MaxMessages and MaxBytes (payload bytes) bound the queue; defaults
	// 100 000 messages and 64 MiB.
	MaxMessages int
	MaxBytes    int64
	// Now stamps messages; time.Now by default.
	Now func() time.Time
	// OpenTimeout bounds the wait for the file lock (another process has
	// the outbox open); default 5 s.
	OpenTimeout time.Duration
}

// Message is one queued result.
type Message struct {
	Seq      uint64    `json:"-"`
	ID       string    `json:"id"`
	Topic    string    `json:"topic"`
	Payload  []byte    `json:"payload"`
	Enqueued time.Time `json:"enqueued"`
	Attempts int       `json:"attempts"`
	LastErr  string    `json:"last_error,omitempty"`
	// Reason is why a quarantined message was refused.
	Reason string `json:"reason,omitempty"`
}

// Stats describe the outbox for status and telemetry.
type Stats struct {
	Depth       int       `json:"depth"`
	Bytes       int64     `json:"bytes"`
	Oldest      time.Time `json:"oldest,omitempty"`
	Quarantined int       `json:"quarantined"`
	Full        bool      `json:"full"`
	MaxMessages int       `json:"max_messages"`
	MaxBytes    int64     `json:"max_bytes"`
}

// Outbox is safe for concurrent use.
type Outbox struct {
	db   *bolt.DB
	opts Options
}

// Open opens or creates the outbox file.
func Open(path string, o Options) (*Outbox, error) {
	if o.MaxMessages <= 0 {
		o.MaxMessages = 100000
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 64 << 20
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.OpenTimeout <= 0 {
		o.OpenTimeout = 5 * time.Second
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: o.OpenTimeout})
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %w", ErrStorage, path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bQueue, bIDs, bQuarantine, bMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("%w: %s: %w", ErrStorage, path, err)
	}
	return &Outbox{db: db, opts: o}, nil
}

// Close closes the file; queued messages stay for the next Open.
func (o *Outbox) Close() error { return o.db.Close() }

func seqKey(n uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], n)
	return k[:]
}

// Enqueue stores a message durably (the bbolt commit fsyncs) and returns
// its sequence number. The same event id again returns the stored
// message's sequence and stores nothing. A full outbox refuses with
// ErrFull; a storage failure (disk full, I/O error) is ErrStorage, and
// nothing is half-written.
func (o *Outbox) Enqueue(ctx context.Context, id, topic string, payload []byte) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if id == "" || topic == "" {
		return 0, errors.New("outbox: id and topic are required")
	}
	var seq uint64
	err := o.db.Update(func(tx *bolt.Tx) error {
		ids := tx.Bucket(bIDs)
		if s := ids.Get([]byte(id)); s != nil {
			seq = binary.BigEndian.Uint64(s)
			return nil
		}
		q := tx.Bucket(bQueue)
		meta := tx.Bucket(bMeta)
		if n := getUint(meta, kCount); n >= uint64(o.opts.MaxMessages) {
			return fmt.Errorf("%w: %d messages queued (limit %d)", ErrFull, n, o.opts.MaxMessages)
		}
		if b := getUint(meta, kBytes); int64(b)+int64(len(payload)) > o.opts.MaxBytes {
			return fmt.Errorf("%w: %d bytes queued (limit %d)", ErrFull, b, o.opts.MaxBytes)
		}
		if err := account(meta, 1, int64(len(payload))); err != nil {
			return err
		}
		seq = 1
		if v := meta.Get(kNextSeq); v != nil {
			seq = binary.BigEndian.Uint64(v)
		}
		if err := meta.Put(kNextSeq, seqKey(seq+1)); err != nil {
			return err
		}
		rec, err := json.Marshal(Message{ID: id, Topic: topic, Payload: payload, Enqueued: o.opts.Now().UTC()})
		if err != nil {
			return err
		}
		if err := q.Put(seqKey(seq), rec); err != nil {
			return err
		}
		return ids.Put([]byte(id), seqKey(seq))
	})
	if err != nil {
		if errors.Is(err, ErrFull) {
			return 0, err
		}
		return 0, fmt.Errorf("%w: enqueue: %w", ErrStorage, err)
	}
	return seq, nil
}

func getUint(b *bolt.Bucket, k []byte) uint64 {
	if v := b.Get(k); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// account keeps the running count and payload bytes of the queue (the
// byte bound is on what the broker will carry).
func account(meta *bolt.Bucket, messages, bytes int64) error {
	n := int64(getUint(meta, kBytes)) + bytes
	if err := meta.Put(kBytes, seqKey(uint64(max(n, 0)))); err != nil {
		return err
	}
	c := int64(getUint(meta, kCount)) + messages
	return meta.Put(kCount, seqKey(uint64(max(c, 0))))
}

// Peek returns up to n of the oldest queued messages, in order.
func (o *Outbox) Peek(n int) ([]Message, error) { return o.peekAfter(0, n) }

// Ack removes a delivered message (after the broker's PUBACK). The event
// id is forgotten with it.
func (o *Outbox) Ack(seq uint64) error {
	return o.update(seq, func(tx *bolt.Tx, m *Message) error {
		if err := tx.Bucket(bQueue).Delete(seqKey(seq)); err != nil {
			return err
		}
		if err := account(tx.Bucket(bMeta), -1, -int64(len(m.Payload))); err != nil {
			return err
		}
		return tx.Bucket(bIDs).Delete([]byte(m.ID))
	})
}

// Failed records a failed delivery attempt and returns the attempts so far.
func (o *Outbox) Failed(seq uint64, why string) (int, error) {
	var n int
	err := o.update(seq, func(tx *bolt.Tx, m *Message) error {
		m.Attempts++
		m.LastErr = why
		n = m.Attempts
		rec, err := json.Marshal(m)
		if err != nil {
			return err
		}
		return tx.Bucket(bQueue).Put(seqKey(seq), rec)
	})
	return n, err
}

// Quarantine moves a message the broker refuses (ACL deny, too large) out
// of the queue so that the ones after it can flow.
func (o *Outbox) Quarantine(seq uint64, reason string) error {
	return o.update(seq, func(tx *bolt.Tx, m *Message) error {
		m.Reason = reason
		rec, err := json.Marshal(m)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bQuarantine).Put(seqKey(seq), rec); err != nil {
			return err
		}
		if err := tx.Bucket(bQueue).Delete(seqKey(seq)); err != nil {
			return err
		}
		if err := account(tx.Bucket(bMeta), -1, -int64(len(m.Payload))); err != nil {
			return err
		}
		return tx.Bucket(bIDs).Delete([]byte(m.ID))
	})
}

// Quarantined lists the refused messages, oldest first.
func (o *Outbox) Quarantined() ([]Message, error) {
	var out []Message
	err := o.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bQuarantine).ForEach(func(k, v []byte) error {
			var m Message
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			m.Seq = binary.BigEndian.Uint64(k)
			out = append(out, m)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStorage, err)
	}
	return out, nil
}

// Stats reports depth, size, oldest message and quarantine count.
func (o *Outbox) Stats() (Stats, error) {
	st := Stats{MaxMessages: o.opts.MaxMessages, MaxBytes: o.opts.MaxBytes}
	err := o.db.View(func(tx *bolt.Tx) error {
		q := tx.Bucket(bQueue)
		st.Depth = int(getUint(tx.Bucket(bMeta), kCount))
		st.Bytes = int64(getUint(tx.Bucket(bMeta), kBytes))
		if _, v := q.Cursor().First(); v != nil {
			var m Message
			if err := json.Unmarshal(v, &m); err == nil {
				st.Oldest = m.Enqueued
			}
		}
		st.Quarantined = tx.Bucket(bQuarantine).Stats().KeyN
		return nil
	})
	st.Full = st.Depth >= st.MaxMessages || st.Bytes >= st.MaxBytes
	if err != nil {
		return st, fmt.Errorf("%w: %w", ErrStorage, err)
	}
	return st, nil
}

func (o *Outbox) update(seq uint64, fn func(*bolt.Tx, *Message) error) error {
	err := o.db.Update(func(tx *bolt.Tx) error {
		v := tx.Bucket(bQueue).Get(seqKey(seq))
		if v == nil {
			return fmt.Errorf("%w: %d", ErrNotFound, seq)
		}
		var m Message
		if err := json.Unmarshal(v, &m); err != nil {
			return err
		}
		return fn(tx, &m)
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: %w", ErrStorage, err)
	}
	return err
}

// Size is the outbox file's size on disk.
func (o *Outbox) Size() int64 {
	st, err := os.Stat(o.db.Path())
	if err != nil {
		return 0
	}
	return st.Size()
}

// peekAfter returns up to n queued messages with a sequence number above
// after, in order: the deliverer's read cursor, behind which are the
// messages it has in flight or whose removal is pending.
func (o *Outbox) peekAfter(after uint64, n int) ([]Message, error) {
	var out []Message
	err := o.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bQueue).Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < n; k, v = c.Next() {
			var m Message
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("record %d: %w", binary.BigEndian.Uint64(k), err)
			}
			m.Seq = binary.BigEndian.Uint64(k)
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStorage, err)
	}
	return out, nil
}

// ackAll is Ack for many delivered messages (as read from the queue) in
// one transaction, so one fsync: bbolt commits synchronously, and a commit
// per message would bound the drain of a backlog by the disk's sync rate.
// Messages no longer queued are skipped.
func (o *Outbox) ackAll(ms []Message) error {
	err := o.db.Update(func(tx *bolt.Tx) error {
		q, ids, meta := tx.Bucket(bQueue), tx.Bucket(bIDs), tx.Bucket(bMeta)
		var count, size int64
		for _, m := range ms {
			k := seqKey(m.Seq)
			if q.Get(k) == nil {
				continue
			}
			if err := q.Delete(k); err != nil {
				return err
			}
			// The id maps to this sequence until it is removed (Enqueue
			// de-duplicates), but check rather than trust the caller.
			if s := ids.Get([]byte(m.ID)); s != nil && binary.BigEndian.Uint64(s) == m.Seq {
				if err := ids.Delete([]byte(m.ID)); err != nil {
					return err
				}
			}
			count++
			size += int64(len(m.Payload))
		}
		if count == 0 {
			return nil
		}
		return account(meta, -count, -size)
	})
	if err != nil {
		return fmt.Errorf("%w: ack: %w", ErrStorage, err)
	}
	return nil
}
