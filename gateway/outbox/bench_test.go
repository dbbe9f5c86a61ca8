package outbox

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/kazashi/kazashi/gateway/mqtt/mqtttest"
)

// backlog is the size of the drained backlog (acceptance 7).
const backlog = 10000

// mosquittoPub finds the baseline client, failing (never skipping) without
// it.
func mosquittoPub(b *testing.B) string {
	bin, err := exec.LookPath("mosquitto_pub")
	if err != nil {
		b.Fatal("mosquitto_pub not found (the baseline of this benchmark): apt-get install -y mosquitto-clients")
	}
	return bin
}

// BenchmarkDrain10k: a backlog of 10 000 realistic events (about 700
// bytes of JSON each) in the outbox, drained by the Deliverer (default
// Window) over the real gateway/mqtt client to a Mosquitto on loopback,
// until every message had its PUBACK and was removed; next to it, in the
// same run against the same broker, mosquitto_pub -q 1 -l sending the same
// payloads, one per line on stdin, and waiting for the last PUBACK. ns/op
// is one drain; drain-s and mosquitto_pub-s are the means per drain, ratio
// is drain over mosquitto_pub (target: at most 3).
func BenchmarkDrain10k(b *testing.B) {
	pubBin := mosquittoPub(b)
	m := mqtttest.StartMosquitto(b)
	payloads := make([][]byte, backlog)
	for i := range payloads {
		payloads[i] = eventPayload(i)
		if bytes.IndexByte(payloads[i], '\n') >= 0 {
			b.Fatal("a payload with a newline would be two messages for mosquitto_pub -l")
		}
	}
	stdin := append(bytes.Join(payloads, []byte("\n")), '\n')
	b.Logf("payload %d..%d bytes", len(payloads[0]), len(payloads[backlog-1]))

	// The backlog is built once (without fsync per message: filling is
	// not what is measured) and copied before every drain.
	dir := b.TempDir()
	template := filepath.Join(dir, "template.db")
	ob, err := Open(template, Options{})
	if err != nil {
		b.Fatal(err)
	}
	ob.db.NoSync = true
	for i, p := range payloads {
		if _, err := ob.Enqueue(context.Background(), fmt.Sprintf("ev-%d", i), eventsTopic, p); err != nil {
			b.Fatal(err)
		}
	}
	ob.db.NoSync = false
	if err := ob.db.Sync(); err != nil {
		b.Fatal(err)
	}
	ob.Close()

	c := connectClient(b, m.URL())
	var drain, baseline time.Duration
	runs := 0
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		path := filepath.Join(dir, fmt.Sprintf("run-%d.db", runs))
		copyFile(b, template, path)
		ob, err := Open(path, Options{})
		if err != nil {
			b.Fatal(err)
		}
		d := &Deliverer{Outbox: ob}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = d.Run(ctx); close(done) }()
		b.StartTimer()

		t0 := time.Now()
		d.Attach(c)
		d.Drain(time.Minute)
		el := time.Since(t0)

		b.StopTimer()
		st, err := ob.Stats()
		if err != nil || st.Depth != 0 {
			b.Fatalf("drain left %d messages (%v); stats %+v", st.Depth, err, d.Stats())
		}
		if ds := d.Stats(); ds.Delivered != backlog || ds.Failures != 0 {
			b.Fatalf("deliverer stats %+v", ds)
		}
		cancel()
		<-done
		ob.Close()
		os.Remove(path)
		drain += el
		baseline += runMosquittoPub(b, pubBin, m, stdin)
		runs++
		b.StartTimer()
	}
	b.ReportMetric(drain.Seconds()/float64(runs), "drain-s")
	b.ReportMetric(baseline.Seconds()/float64(runs), "mosquitto_pub-s")
	b.ReportMetric(float64(drain)/float64(baseline), "ratio")
}

// runMosquittoPub sends stdin's lines as QoS 1 messages and returns how
// long mosquitto_pub took, start to exit (it exits after the last
// PUBACK).
func runMosquittoPub(b *testing.B, bin string, m *mqtttest.Mosquitto, stdin []byte) time.Duration {
	_, port, err := net.SplitHostPort(m.Addr())
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "-h", "127.0.0.1", "-p", port, "-q", "1", "-l", "-t", eventsTopic,
		"-i", fmt.Sprintf("kz-baseline-%d", clientSeq.Add(1)))
	cmd.Stdin = bytes.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("mosquitto_pub: %v\n%s", err, out.String())
	}
	return time.Since(t0)
}

func copyFile(b *testing.B, from, to string) {
	src, err := os.Open(from)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		b.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		b.Fatal(err)
	}
}

// ackTimer is the real client with a signal at every PUBACK.
type ackTimer struct {
	AsyncPublisher
	acked chan uint64 // the event index of each acknowledged payload
}

func (a *ackTimer) PublishAsync(ctx context.Context, topic string, payload []byte, qos byte, retained bool) (func() error, error) {
	wait, err := a.AsyncPublisher.PublishAsync(ctx, topic, payload, qos, retained)
	if err != nil {
		return nil, err
	}
	n := payload
	return func() error {
		err := wait()
		if err == nil {
			i := bytes.LastIndex(n, []byte(`"n":`))
			v, _ := strconv.ParseUint(string(bytes.TrimSuffix(n[i+4:], []byte("}"))), 10, 64)
			a.acked <- v
		}
		return err
	}, nil
}

// BenchmarkEnqueueToPUBACK: one event at a time into an idle Deliverer's
// outbox, from the call to Enqueue (its fsynced commit included) to the
// broker's PUBACK over the real client to Mosquitto on loopback. ns/op is
// the mean; p50-ms and p99-ms over at least 500 samples.
func BenchmarkEnqueueToPUBACK(b *testing.B) {
	m := mqtttest.StartMosquitto(b)
	c := connectClient(b, m.URL())
	ob, err := Open(filepath.Join(b.TempDir(), "o.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer ob.Close()
	ap, _ := any(c).(AsyncPublisher) // connectClient checked
	at := &ackTimer{AsyncPublisher: ap, acked: make(chan uint64, 1)}
	d := &Deliverer{Outbox: ob}
	d.Attach(at)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	var lat []time.Duration
	sample := func(i int) {
		p := eventPayload(i)
		t0 := time.Now()
		if _, err := ob.Enqueue(ctx, fmt.Sprintf("ev-%d", i), eventsTopic, p); err != nil {
			b.Fatal(err)
		}
		d.Notify()
		select {
		case n := <-at.acked:
			if n != uint64(i) {
				b.Fatalf("PUBACK for event %d, want %d", n, i)
			}
		case <-time.After(waitLong):
			b.Fatalf("no PUBACK for event %d", i)
		}
		lat = append(lat, time.Since(t0))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		sample(i)
		i++
	}
	var total time.Duration
	for _, l := range lat {
		total += l
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(len(lat)), "ns/op")
	for len(lat) < 500 { // percentiles want enough samples
		sample(i)
		i++
	}
	slices.Sort(lat)
	ms := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))]) / 1e6 }
	b.ReportMetric(ms(0.50), "p50-ms")
	b.ReportMetric(ms(0.99), "p99-ms")
}
