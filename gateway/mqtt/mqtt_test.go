package mqtt_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kazashi/kazashi/gateway/mqtt"
	"github.com/kazashi/kazashi/gateway/mqtt/mqtttest"
)

var (
	online        = mqtt.Status{Schema: mqtt.StatusSchema, Online: true}
	offlineClosed = mqtt.Status{Schema: mqtt.StatusSchema, Online: false, Reason: mqtt.ReasonShutdown}
	offlineWill   = mqtt.Status{Schema: mqtt.StatusSchema, Online: false, Reason: mqtt.ReasonConnectionLost}
)

func TestPublishSubscribeRoundTrip(t *testing.T) {
	t.Parallel()
	m := mqtttest.StartMosquitto(t)
	sub := connect(t, options(t, m.URL()))
	pub := connect(t, options(t, m.URL()))

	type got struct {
		topic   string
		payload []byte
	}
	ch := make(chan got, 1)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := sub.Subscribe(ctx, "kazashi/dev1/events/+", 1, func(topic string, payload []byte) {
		ch <- got{topic, payload}
	}); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}

	payload := make([]byte, 1000) // every byte value, including NUL and invalid UTF-8
	for i := range payload {
		payload[i] = byte(i)
	}
	if err := pub.Publish(ctx, "kazashi/dev1/events/tap", payload, 1, false); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	select {
	case g := <-ch:
		if g.topic != "kazashi/dev1/events/tap" {
			t.Errorf("topic = %q", g.topic)
		}
		if !bytes.Equal(g.payload, payload) {
			t.Errorf("payload changed in transit: got %d bytes % x...", len(g.payload), g.payload[:min(16, len(g.payload))])
		}
	case <-time.After(waitLong):
		t.Fatal("message not received")
	}
}

func TestStatusOnlineThenShutdown(t *testing.T) {
	t.Parallel()
	m := mqtttest.StartMosquitto(t)
	const topic = "kazashi/dev2/status"
	o := options(t, m.URL())
	o.StatusTopic = topic
	c := connect(t, o)

	// Connect returns after the online status is acknowledged, so a late
	// subscriber gets it as a retained message.
	msg := waitStatus(t, observe(t, m.URL(), topic), online)
	if !msg.retained {
		t.Error("online status not retained")
	}
	if !c.Connected() {
		t.Error("Connected() = false after Connect")
	}

	c.Close()
	c.Close() // idempotent
	if c.Connected() {
		t.Error("Connected() = true after Close")
	}
	// A new subscriber sees the retained graceful offline, not the will.
	msg = waitStatus(t, observe(t, m.URL(), topic), offlineClosed)
	if !msg.retained {
		t.Error("offline status not retained")
	}
	err := c.Publish(context.Background(), "kazashi/dev2/events", []byte("x"), 1, false)
	if !errors.Is(err, mqtt.ErrClosed) {
		t.Errorf("Publish after Close: %v, want ErrClosed", err)
	}
}

func TestLastWillWhenConnectionDies(t *testing.T) {
	t.Parallel()
	m := mqtttest.StartMosquitto(t)
	proxy := mqtttest.StartProxy(t, m.Addr())
	const topic = "kazashi/dev3/status"
	o := options(t, proxy.URL())
	o.StatusTopic = topic
	c := connect(t, o)
	status := observe(t, m.URL(), topic)
	waitStatus(t, status, online)

	proxy.Cut() // TCP dies, no DISCONNECT: the broker must publish the will
	// Live delivery carries retain=0 (MQTT-3.3.1-9); retention is checked
	// with a late subscriber below.
	waitStatus(t, status, offlineWill)
	if late := waitStatus(t, observe(t, m.URL(), topic), offlineWill); !late.retained {
		t.Error("late subscriber did not get the retained will")
	}

	// The client reconnects through the proxy by itself and says so.
	waitStatus(t, status, online)
	eventually(t, "reconnect", c.Connected)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := c.Publish(ctx, "kazashi/dev3/events", []byte("after"), 1, false); err != nil {
		t.Fatalf("Publish after reconnect: %v", err)
	}
}

func TestDeadBrokerFailsFastThenRecovers(t *testing.T) {
	t.Parallel()
	m := mqtttest.StartMosquitto(t)
	const topic = "kazashi/dev4/status"
	o := options(t, m.URL())
	o.StatusTopic = topic
	c := connect(t, o)
	cmds := make(chan []byte, 10)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := c.Subscribe(ctx, "kazashi/dev4/cmd", 1, func(_ string, p []byte) { cmds <- p }); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}

	m.Stop()
	// Every publish while the broker is down fails promptly; none is reported
	// as delivered. The first may race paho noticing the loss; it still fails.
	for i := range 5 {
		start := time.Now()
		err := c.Publish(ctx, "kazashi/dev4/events", []byte("tap"), 1, false)
		if err == nil {
			t.Fatalf("publish %d with broker down reported success", i)
		}
		if !errors.Is(err, mqtt.ErrNotConnected) {
			t.Errorf("publish %d: %v, want ErrNotConnected", i, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("publish %d took %v to fail", i, d)
		}
		time.Sleep(50 * time.Millisecond) // spread attempts over the outage
	}
	if c.Connected() {
		t.Error("Connected() = true with broker down")
	}
	err := c.Subscribe(ctx, "kazashi/dev4/cmd2", 1, func(string, []byte) {})
	if !errors.Is(err, mqtt.ErrNotConnected) {
		t.Errorf("Subscribe with broker down: %v, want ErrNotConnected", err)
	}

	m.Restart() // same port; retained messages and sessions are gone
	eventually(t, "reconnect after broker restart", c.Connected)
	if err := c.Publish(ctx, "kazashi/dev4/events", []byte("tap"), 1, false); err != nil {
		t.Fatalf("Publish after restart: %v", err)
	}
	// Status republished on the fresh broker, and the subscription restored.
	waitStatus(t, observe(t, m.URL(), topic), online)
	other := connect(t, options(t, m.URL()))
	eventually(t, "command delivered through restored subscription", func() bool {
		if err := other.Publish(ctx, "kazashi/dev4/cmd", []byte("reboot"), 1, false); err != nil {
			t.Fatalf("Publish cmd: %v", err)
		}
		select {
		case p := <-cmds:
			return string(p) == "reboot"
		case <-time.After(100 * time.Millisecond): // re-subscribe may still be in flight
			return false
		}
	})
}

// TestInFlightPublishFailsOnConnectionLoss is the paho trap from the fact
// sheet: a QoS 1 message whose PUBACK never came must not be reported as
// delivered when the client reconnects.
func TestInFlightPublishFailsOnConnectionLoss(t *testing.T) {
	t.Parallel()
	m := mqtttest.StartMosquitto(t)
	proxy := mqtttest.StartProxy(t, m.Addr())
	c := connect(t, options(t, proxy.URL()))

	proxy.Blackhole(true) // the PUBLISH (and any PUBACK) is lost
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		errc <- c.Publish(ctx, "kazashi/dev5/events", []byte("tap"), 1, false)
	}()
	time.Sleep(200 * time.Millisecond) // let the PUBLISH go out into the hole
	proxy.Blackhole(false)
	proxy.Cut()
	select {
	case err := <-errc:
		if !errors.Is(err, mqtt.ErrNotConnected) {
			t.Fatalf("in-flight publish: %v, want ErrNotConnected", err)
		}
	case <-time.After(waitLong):
		t.Fatal("in-flight publish still waiting after the connection died")
	}
	eventually(t, "reconnect", c.Connected)
}

// TestHalfOpenConnectionDetected: the network silently stops carrying bytes
// (Wi-Fi gone); keep-alive notices, publishes fail fast, the broker sends the
// will, and the client comes back when the network does.
func TestHalfOpenConnectionDetected(t *testing.T) {
	t.Parallel()
	m := mqtttest.StartMosquitto(t)
	proxy := mqtttest.StartProxy(t, m.Addr())
	const topic = "kazashi/dev6/status"
	o := options(t, proxy.URL())
	o.StatusTopic = topic
	o.KeepAlive = time.Second // ping after 1 s idle, dead after 1 s more
	c := connect(t, o)
	status := observe(t, m.URL(), topic)
	waitStatus(t, status, online)

	proxy.Blackhole(true)
	start := time.Now()
	eventually(t, "half-open connection detected", func() bool { return !c.Connected() })
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("detection took %v with a 1 s keep-alive", d)
	}
	err := c.Publish(context.Background(), "kazashi/dev6/events", []byte("tap"), 1, false)
	if !errors.Is(err, mqtt.ErrNotConnected) {
		t.Errorf("Publish while detected down: %v, want ErrNotConnected", err)
	}
	// The client closed its socket, so the broker sees the end and sends the will.
	waitStatus(t, status, offlineWill)

	proxy.Blackhole(false)
	waitStatus(t, status, online)
	eventually(t, "reconnect", c.Connected)
}

func TestConnectNothingListening(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // now nothing listens there

	const budget = 700 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	start := time.Now()
	c, err := mqtt.Connect(ctx, options(t, "tcp://"+addr))
	elapsed := time.Since(start)
	if err == nil {
		c.Close()
		t.Fatal("Connect succeeded with nothing listening")
	}
	t.Logf("unreachable after %v: %v", elapsed, err)
	if elapsed > budget+500*time.Millisecond { // slack for a loaded CI box
		t.Errorf("Connect took %v, ctx allowed %v", elapsed, budget)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error does not wrap context.DeadlineExceeded: %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"mqtt: connect", addr, "unreachable", "connection refused"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
}

// TestConnectSilentBrokerHonoursCtx: a peer that accepts TCP but never sends
// CONNACK must not hold Connect past ctx (ConnectTimeout is much longer).
func TestConnectSilentBrokerHonoursCtx(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { conn.Close() })
		}
	}()

	o := options(t, "tcp://"+ln.Addr().String())
	o.ConnectTimeout = 20 * time.Second
	const budget = 500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	start := time.Now()
	c, err := mqtt.Connect(ctx, o)
	if err == nil {
		c.Close()
		t.Fatal("Connect succeeded against a silent peer")
	}
	if d := time.Since(start); d > budget+500*time.Millisecond {
		t.Errorf("Connect took %v, ctx allowed %v", d, budget)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error does not wrap context.DeadlineExceeded: %v", err)
	}

	// Cancellation (no deadline) aborts a stuck handshake too.
	ctx2, cancel2 := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel2)
	start = time.Now()
	if c, err := mqtt.Connect(ctx2, o); err == nil {
		c.Close()
		t.Fatal("Connect succeeded against a silent peer")
	} else if !errors.Is(err, context.Canceled) {
		t.Errorf("error does not wrap context.Canceled: %v", err)
	}
	if d := time.Since(start); d > 800*time.Millisecond {
		t.Errorf("cancelled Connect took %v", d)
	}
}

// TestConnectRefusedNotRetried: a broker that answers CONNACK "not
// authorised" gets no retries; Connect fails at once with ErrRefused.
func TestConnectRefusedNotRetried(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var attempts atomic.Int32
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			attempts.Add(1)
			go func() {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(waitLong))
				buf := make([]byte, 512)
				if _, err := conn.Read(buf); err != nil { // the CONNECT packet
					return
				}
				// CONNACK (MQTT 3.1.1 §3.2): type 0x20, length 2, no session
				// present, return code 5 = not authorised.
				conn.Write([]byte{0x20, 0x02, 0x00, 0x05})
				conn.Read(buf) // wait for the client to hang up
			}()
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	c, err := mqtt.Connect(ctx, options(t, "tcp://"+ln.Addr().String()))
	if err == nil {
		c.Close()
		t.Fatal("Connect succeeded against a refusing broker")
	}
	t.Logf("refused: %v", err)
	if !errors.Is(err, mqtt.ErrRefused) {
		t.Errorf("error does not wrap ErrRefused: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refused Connect took %v; it should not retry", d)
	}
	if n := attempts.Load(); n != 1 {
		t.Errorf("%d connection attempts, want 1", n)
	}
}

func TestPublishRejectsBadInput(t *testing.T) {
	t.Parallel()
	m := mqtttest.StartMosquitto(t)
	c := connect(t, options(t, m.URL()))
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	for _, topic := range []string{"", "kazashi/+/events", "kazashi/#", "a\x00b", "bad\xffutf8"} {
		if err := c.Publish(ctx, topic, []byte("x"), 1, false); !errors.Is(err, mqtt.ErrInvalidTopic) {
			t.Errorf("Publish(%q): %v, want ErrInvalidTopic", topic, err)
		}
	}
	for _, filter := range []string{"", "a/#/b", "a/b+", "a#"} {
		if err := c.Subscribe(ctx, filter, 1, func(string, []byte) {}); !errors.Is(err, mqtt.ErrInvalidTopic) {
			t.Errorf("Subscribe(%q): %v, want ErrInvalidTopic", filter, err)
		}
	}
	if err := c.Publish(ctx, "kazashi/x", nil, 3, false); err == nil {
		t.Error("Publish with QoS 3 succeeded")
	}
	// None of that reached the broker, so the connection is intact.
	if err := c.Publish(ctx, "kazashi/x", []byte("ok"), 1, false); err != nil {
		t.Fatalf("Publish after rejected ones: %v", err)
	}
	done, cancelDone := context.WithCancel(ctx)
	cancelDone()
	if err := c.Publish(done, "kazashi/x", []byte("late"), 1, false); !errors.Is(err, context.Canceled) {
		t.Errorf("Publish with cancelled ctx: %v", err)
	}
}

func TestConnectRejectsBadOptions(t *testing.T) {
	t.Parallel()
	for name, o := range map[string]mqtt.Options{
		"no broker":     {ClientID: "x"},
		"bad scheme":    {Broker: "http://127.0.0.1:1883", ClientID: "x"},
		"ws":            {Broker: "ws://127.0.0.1:1883", ClientID: "x"},
		"no host":       {Broker: "tcp://:1883", ClientID: "x"},
		"no client id":  {Broker: "tcp://127.0.0.1:1883"},
		"wild status":   {Broker: "tcp://127.0.0.1:1883", ClientID: "x", StatusTopic: "kazashi/+/status"},
		"negative time": {Broker: "tcp://127.0.0.1:1883", ClientID: "x", KeepAlive: -time.Second},
	} {
		c, err := mqtt.Connect(context.Background(), o)
		if err == nil {
			c.Close()
			t.Errorf("%s: Connect succeeded", name)
		} else if !strings.HasPrefix(err.Error(), "mqtt: ") {
			t.Errorf("%s: error %q lacks the mqtt: prefix", name, err)
		}
	}
}

// TestConnectedSinceAndPublishAsync: ConnectedSince is the (injected)
// time of the current connection, zero while there is none and new after
// a reconnect; PublishAsync hands messages over in order and each wait
// returns nil only after its PUBACK; while disconnected the hand-over
// itself fails with ErrNotConnected.
func TestConnectedSinceAndPublishAsync(t *testing.T) {
	t.Parallel()
	m := mqtttest.StartMosquitto(t)
	var mu sync.Mutex
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	o := options(t, m.URL())
	o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c := connect(t, o)
	if got := c.ConnectedSince(); !got.Equal(now) {
		t.Fatalf("ConnectedSince = %v, want %v", got, now)
	}
	obs := observe(t, m.URL(), "kazashi/dev9/events") // in arrival order (OrderMatters)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	var waits []func() error
	for i := range 50 {
		w, err := c.PublishAsync(ctx, "kazashi/dev9/events", fmt.Appendf(nil, "%d", i), 1, false)
		if err != nil {
			t.Fatalf("PublishAsync %d: %v", i, err)
		}
		waits = append(waits, w)
	}
	for i, w := range waits {
		if err := w(); err != nil {
			t.Fatalf("wait %d: %v", i, err)
		}
	}
	timeout := time.After(waitLong)
	for i := range 50 {
		select {
		case msg := <-obs:
			if want := fmt.Sprint(i); string(msg.payload) != want {
				t.Fatalf("message %d is %q, want %q: handed over in order, delivered out of order", i, msg.payload, want)
			}
		case <-timeout:
			t.Fatalf("only %d of 50 messages observed", i)
		}
	}

	m.Stop()
	eventually(t, "disconnected", func() bool { return !c.Connected() })
	if got := c.ConnectedSince(); !got.IsZero() {
		t.Fatalf("ConnectedSince while disconnected = %v", got)
	}
	if _, err := c.PublishAsync(ctx, "kazashi/dev9/events", []byte("x"), 1, false); !errors.Is(err, mqtt.ErrNotConnected) {
		t.Fatalf("PublishAsync while disconnected: %v, want ErrNotConnected", err)
	}
	mu.Lock()
	now = now.Add(time.Hour)
	mu.Unlock()
	m.Restart()
	eventually(t, "reconnected", c.Connected)
	if got := c.ConnectedSince(); !got.Equal(now) {
		t.Fatalf("ConnectedSince after the reconnect = %v, want %v", got, now)
	}
}
