package holder

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxClientLine bounds a line the client accepts from the server
// (attributes in UTF-8 can exceed the server's own 4 KiB limit).
const maxClientLine = 64 << 10

// ErrNoRequest is returned by Client.Answer and Client.Cancel before Next
// returned a request.
var ErrNoRequest = errors.New("holder: no request to answer")

// Client is the endpoint's other side: a PIN pad, the kiosk screen, the
// demo or a test. Its methods may be called from different goroutines.
type Client struct {
	c          *net.UnixConn
	wmu        sync.Mutex
	readerDone chan struct{}

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every state change
	reqs    []serverMsg   // requests not yet returned by Next
	last    uint64        // id of the request Next returned last
	doneID  uint64        // highest id reported done
	errs    []clientErr   // recent "error" replies
	errSeq  uint64
	attrs   []Attributes // received, not yet returned by Attributes
	err     error        // why the connection ended
}

type clientErr struct {
	seq, id uint64
	msg     string
}

// serverMsg is a server line as the client decodes it.
type serverMsg struct {
	Type      string `json:"type"`
	ID        uint64 `json:"id"`
	Kind      Kind   `json:"kind"`
	TriesLeft int    `json:"tries_left"`
	Profile   string `json:"profile"`
	Error     string `json:"error"`

	Name             string `json:"name"`
	Address          string `json:"address"`
	BirthDate        string `json:"birth_date"`
	Sex              string `json:"sex"`
	IndividualNumber string `json:"individual_number"`
}

// Dial connects to the server at path.
func Dial(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("holder: %w", err)
	}
	c := &Client{c: nc.(*net.UnixConn), readerDone: make(chan struct{}), changed: make(chan struct{})}
	go c.readLoop()
	return c, nil
}

func (c *Client) readLoop() {
	defer close(c.readerDone)
	sc := bufio.NewScanner(c.c)
	sc.Buffer(make([]byte, 0, 4096), maxClientLine)
	for sc.Scan() {
		line := sc.Bytes()
		var m serverMsg
		err := json.Unmarshal(line, &m)
		clear(line) // attributes are personal data
		if err != nil {
			continue // not ours to judge; keep the connection
		}
		c.mu.Lock()
		switch m.Type {
		case "request":
			if m.ID > c.doneID {
				c.reqs = append(c.reqs, m)
			}
		case "done":
			c.doneID = max(c.doneID, m.ID)
			c.reqs = dropDone(c.reqs, c.doneID)
		case "error":
			c.errSeq++
			c.errs = append(c.errs, clientErr{c.errSeq, m.ID, m.Error})
			if len(c.errs) > 16 {
				c.errs = c.errs[1:]
			}
		case "attributes":
			c.attrs = append(c.attrs, Attributes{
				Profile: m.Profile, Name: m.Name, Address: m.Address, BirthDate: m.BirthDate,
				Sex: m.Sex, IndividualNumber: m.IndividualNumber,
			})
			if len(c.attrs) > 16 {
				c.attrs = c.attrs[1:]
			}
		}
		c.notifyLocked()
		c.mu.Unlock()
	}
	err := sc.Err()
	if err == nil {
		err = ErrClosed
	} else {
		err = fmt.Errorf("%w: %w", ErrClosed, err)
	}
	c.mu.Lock()
	c.err = err
	c.notifyLocked()
	c.mu.Unlock()
}

func dropDone(reqs []serverMsg, doneID uint64) []serverMsg {
	out := reqs[:0]
	for _, r := range reqs {
		if r.ID > doneID {
			out = append(out, r)
		}
	}
	return out
}

func (c *Client) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// wait calls cond under the lock until it reports done or an error, or
// ctx ends.
func (c *Client) wait(ctx context.Context, cond func() (bool, error)) error {
	for {
		c.mu.Lock()
		ok, err := cond()
		ch := c.changed
		c.mu.Unlock()
		if ok || err != nil {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Next waits for a request that is still pending and returns it; Answer
// and Cancel then refer to it. Other messages are skipped (attributes are
// kept for Attributes).
func (c *Client) Next(ctx context.Context) (Request, error) {
	var r Request
	err := c.wait(ctx, func() (bool, error) {
		for len(c.reqs) > 0 {
			m := c.reqs[0]
			c.reqs = c.reqs[1:]
			if m.ID <= c.doneID {
				continue
			}
			c.last = m.ID
			r = Request{Kind: m.Kind, TriesLeft: m.TriesLeft, Profile: m.Profile}
			return true, nil
		}
		return false, c.err
	})
	return r, err
}

// Answer sends value for the request Next returned last and waits until
// the server ends the request (nil: answered, by this or another client)
// or refuses the value (an error wrapping ErrFormat; the request stays
// pending and Answer may be called again). Answer zeroes the line it
// built; value stays the caller's.
func (c *Client) Answer(ctx context.Context, value []byte) error {
	c.mu.Lock()
	id, mark := c.last, c.errSeq
	c.mu.Unlock()
	if id == 0 {
		return ErrNoRequest
	}
	line := make([]byte, 0, 64+2*len(value))
	line = append(line, `{"type":"answer","id":`...)
	line = strconv.AppendUint(line, id, 10)
	line = append(line, `,"value":`...)
	line = appendBytesString(line, value)
	line = append(line, "}\n"...)
	err := c.write(ctx, line)
	clear(line[:cap(line)])
	if err != nil {
		return err
	}
	return c.wait(ctx, func() (bool, error) {
		if c.doneID >= id {
			return true, nil
		}
		for _, e := range c.errs {
			if e.seq > mark && e.id == id {
				if strings.HasPrefix(e.msg, "format") {
					return false, fmt.Errorf("%w: %s", ErrFormat, strings.TrimPrefix(strings.TrimPrefix(e.msg, "format"), ": "))
				}
				return false, fmt.Errorf("holder: answer refused: %s", e.msg)
			}
		}
		return false, c.err
	})
}

// Cancel cancels the request Next returned last and waits until the server
// ends it.
func (c *Client) Cancel(ctx context.Context) error {
	c.mu.Lock()
	id := c.last
	c.mu.Unlock()
	if id == 0 {
		return ErrNoRequest
	}
	line := strconv.AppendUint([]byte(`{"type":"cancel","id":`), id, 10)
	if err := c.write(ctx, append(line, "}\n"...)); err != nil {
		return err
	}
	return c.wait(ctx, func() (bool, error) { return c.doneID >= id, c.err })
}

// Attributes waits for attributes delivered by the server (including ones
// that arrived while Next skipped them) and returns the oldest unread.
// They are personal data: show them, do not keep them.
func (c *Client) Attributes(ctx context.Context) (Attributes, error) {
	var a Attributes
	err := c.wait(ctx, func() (bool, error) {
		if len(c.attrs) > 0 {
			a = c.attrs[0]
			c.attrs = c.attrs[1:]
			return true, nil
		}
		return false, c.err
	})
	return a, err
}

func (c *Client) write(ctx context.Context, line []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(writeTimeout)
	}
	c.c.SetWriteDeadline(dl)
	stop := context.AfterFunc(ctx, func() { c.c.SetWriteDeadline(time.Unix(1, 0)) })
	_, err := c.c.Write(line)
	stop()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("holder: %w", err)
	}
	return nil
}

// Close disconnects and waits for the client's reader to end.
func (c *Client) Close() error {
	err := c.c.Close()
	<-c.readerDone
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("holder: %w", err)
	}
	return nil
}
