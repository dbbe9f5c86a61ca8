// Package mqtt is the gateway's MQTT client: connect (optionally TLS), retained
// online/offline status with a last will, QoS 1 publish that reports success
// only after the broker's PUBACK, subscriptions that survive reconnects, and
// automatic reconnection with jittered backoff. It is the only package that
// imports paho; everything else sees Client.
//
// # Delivery semantics
//
// Publish returns nil only when the broker acknowledged the message (PUBACK
// for QoS 1, PUBCOMP for QoS 2; for QoS 0, when it was written to the
// connection). Any error means "not known to be delivered": the caller keeps
// the message and retries later. An error does not prove non-delivery (the
// broker may have received it and the acknowledgement got lost), so payloads
// carry event ids and the backend de-duplicates.
//
// While disconnected, Publish fails at once with ErrNotConnected; nothing is
// queued inside this package. A message in flight when the connection drops
// fails with ErrNotConnected too; it is never silently re-sent on the next
// connection with its token completed as if acknowledged.
//
// # Why clean sessions, a memory store and our own reconnect loop
//
// paho's stores are not an outbox (no fsync, wiped on connect). Worse, when
// paho resumes a stored session after a reconnect it completes the original
// publish tokens as successful as soon as the message is re-queued, before any
// PUBACK, and with its own auto-reconnect Publish on a dropped connection
// queues the message and returns a pending token. Both break "nil means the
// broker has it". So this client runs paho with CleanSession=true, a
// MemoryStore that is reset on every connect, AutoReconnect=false and
// ConnectRetry=false: on connection loss paho fails every pending token, and
// this package reconnects by itself, re-subscribes and republishes the online
// status. The durable outbox (gateway/outbox) owns retries across restarts
// and outages. The price of clean sessions is that the broker does not queue
// messages for our subscriptions while we are offline; device commands must
// therefore be idempotent and re-requestable (retained desired state, or
// re-sent by the backend until answered).
package mqtt

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/kazashi/kazashi/gateway/backoff"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrNotConnected means the client has no connection to the broker right
	// now, or lost it before the broker acknowledged. Keep the message and
	// retry once Connected reports true again.
	ErrNotConnected = errors.New("mqtt: not connected")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("mqtt: client closed")
	// ErrInvalidTopic is returned for a topic (or filter) that the broker
	// would answer by dropping the connection, such as a wildcard in a
	// publish topic. Such a message will never be accepted: quarantine it.
	ErrInvalidTopic = errors.New("mqtt: invalid topic")
	// ErrRefused is wrapped when the broker refuses the connection (bad
	// credentials, not authorised, client id rejected) or a subscription.
	// Connect does not retry a refused connection.
	ErrRefused = errors.New("mqtt: refused by broker")
)

// Defaults for zero Options fields.
const (
	// DefaultKeepAlive: a half-open connection (kiosk Wi-Fi gone, NAT state
	// dropped) is noticed within KeepAlive plus the ping timeout (below).
	DefaultKeepAlive = 30 * time.Second
	// DefaultConnectTimeout bounds one TCP/TLS dial plus CONNECT/CONNACK.
	DefaultConnectTimeout = 10 * time.Second
	// DefaultMaxReconnectInterval caps the reconnect backoff so a kiosk is
	// back online within about this long after the broker returns.
	DefaultMaxReconnectInterval = 30 * time.Second
)

const (
	// minBackoff is the first delay between connection attempts: short enough
	// that a network blip costs little, long enough to avoid a hot loop when a
	// broker accepts TCP and then drops us at once.
	minBackoff = 250 * time.Millisecond
	// writeTimeout bounds one packet write (and paho's hand-over of a packet to
	// its writer); a write stuck this long means the connection is dead.
	writeTimeout = 10 * time.Second
	// statusTimeout bounds the offline-status publish in Close (Close has no
	// ctx) and each re-subscribe/online-status step after a reconnect.
	statusTimeout = 5 * time.Second
	// disconnectQuiesce is how long (ms) paho may take to flush DISCONNECT.
	disconnectQuiesce = 250
	// maxPingTimeout caps how long a PINGRESP may take before the connection
	// is declared dead; the ping timeout is min(KeepAlive, maxPingTimeout), so
	// a silent network costs at most about two keep-alive periods.
	maxPingTimeout = 10 * time.Second
	// maxTopicLen is the MQTT limit on a UTF-8 encoded topic (2-byte length).
	maxTopicLen = 65535
)

// Options configures Connect.
type Options struct {
	// Broker is the broker URL: tcp://host:port (or mqtt://) for plain TCP,
	// ssl://, tls:// or mqtts:// for TLS. The port defaults to 1883 / 8883.
	Broker string
	// TLSConfig is used for TLS brokers (nil: system roots, server name from
	// the URL). Mutual TLS: put the device certificate in Certificates.
	TLSConfig *tls.Config
	// ClientID identifies the device; required. A second connection with the
	// same id takes the session over and drops this one.
	ClientID string
	// Username and Password are optional (MQTT 3.1.1 CONNECT fields).
	Username, Password string
	// StatusTopic, if set, receives a retained Status: online on every
	// (re)connect, offline with reason "shutdown" on Close, and, as the last
	// will the broker publishes when the connection dies without DISCONNECT,
	// offline with reason "connection-lost". All QoS 1.
	StatusTopic string
	// StatusInfo fills Device, Firmware and ConfigSHA256 of every Status
	// published (online, offline and the last will).
	StatusInfo Status
	// PersistentSession asks the broker to keep this client's session
	// (CleanSession false): its subscriptions, and the QoS 1 messages
	// matching them, are kept while it is offline (and across broker
	// restarts if the broker persists sessions). For subscribers that must
	// not miss messages, such as the reference backend. Outgoing
	// publishes keep the semantics above: the local store is still reset
	// on every connect, so nothing is resumed and no token completes
	// early. ClientID must then be stable.
	PersistentSession bool
	// KeepAlive is the MQTT keep-alive interval (whole seconds, at least 1 s);
	// 0 means DefaultKeepAlive. A PINGRESP missing for min(KeepAlive, 10 s)
	// after a ping counts as connection loss.
	KeepAlive time.Duration
	// ConnectTimeout bounds each connection attempt; 0 means
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// MaxReconnectInterval caps the exponential reconnect backoff; 0 means
	// DefaultMaxReconnectInterval.
	MaxReconnectInterval time.Duration
	// Logger receives connection events (never payloads or passwords); nil
	// discards.
	Logger *slog.Logger
	// Now is the clock of ConnectedSince (default time.Now).
	Now func() time.Time
}

// StatusSchema versions the Status document (gateway/schema).
const StatusSchema = "kazashi.status/v1"

// Status is the JSON document retained on Options.StatusTopic.
type Status struct {
	Schema string `json:"schema"`
	Online bool   `json:"online"`
	// Reason says why a device is offline: "shutdown" (Close) or
	// "connection-lost" (last will). Empty when online.
	Reason string `json:"reason,omitempty"`
	// Device, Firmware and ConfigSHA256 come from Options.StatusInfo: the
	// device id, the firmware version and the SHA-256 of the effective
	// configuration, so a fleet manager sees what each kiosk runs.
	Device       string `json:"device_id,omitempty"`
	Firmware     string `json:"firmware,omitempty"`
	ConfigSHA256 string `json:"config_sha256,omitempty"`
}

// Status reasons.
const (
	ReasonShutdown       = "shutdown"
	ReasonConnectionLost = "connection-lost"
)

// Client is a connection to one broker that reconnects by itself until Close.
// Its methods are safe for concurrent use.
type Client struct {
	opts   Options
	broker string // redacted URL, for errors and logs
	scheme string
	host   string // host:port to dial
	log    *slog.Logger

	life     context.Context // ends with Close; aborts dials and the supervisor
	stopLife context.CancelFunc

	dialMu  sync.Mutex
	dialCtx context.Context // bounds the dial of the attempt in progress

	lost           chan struct{} // connection-lost signals for the supervisor
	supervisorDone chan struct{}
	closed         atomic.Bool
	closeOnce      sync.Once

	subsMu sync.Mutex
	subs   map[string]subscription // by filter; re-subscribed on reconnect

	// pc is the paho client of the current connection attempt; po builds
	// a new one for each (connectOnce).
	pcMu   sync.Mutex
	pc     paho.Client
	pcDown chan struct{} // closed when pc's connection is lost
	po     *paho.ClientOptions

	upMu    sync.Mutex
	upSince time.Time // when the current connection came up (ConnectedSince)
}

type subscription struct {
	qos byte
	fn  func(topic string, payload []byte)
}

// routeTopic is the route paho's Subscribe registers for filter: without
// a "$share/<group>/" or "$queue/" prefix (paho v1.5 client.go). AddRoute
// with the same key replaces that route instead of adding a second one
// that would run the handler twice for every message.
func routeTopic(filter string) string {
	if strings.HasPrefix(filter, "$share/") {
		if parts := strings.SplitN(filter, "/", 3); len(parts) == 3 {
			return parts[2]
		}
	}
	return strings.TrimPrefix(filter, "$queue/")
}

func (s subscription) handler() paho.MessageHandler {
	return func(_ paho.Client, m paho.Message) { s.fn(m.Topic(), m.Payload()) }
}

// Connect dials the broker, retrying with backoff until it connects or ctx
// ends; if ctx ends first it returns an error wrapping ctx.Err() and the last
// attempt's error. A refused connection (ErrRefused: bad credentials, not
// authorised) is not retried; TLS and network failures are (a kiosk without
// an RTC may fail certificate validity checks until its clock is set). Once
// connected it publishes the online status, waiting for its PUBACK within
// ctx, and returns; from then on the client reconnects by itself after any
// connection loss until Close.
func Connect(ctx context.Context, o Options) (*Client, error) {
	c, err := newClient(o)
	if err != nil {
		return nil, err
	}
	if err := c.connectUntil(ctx); err != nil {
		c.stopLife()
		return nil, err
	}
	c.log.Info("mqtt: connected", "broker", c.broker, "client_id", c.opts.ClientID)
	c.afterConnect(ctx)
	go c.supervise()
	return c, nil
}

func newClient(o Options) (*Client, error) {
	if o.Broker == "" {
		return nil, errors.New("mqtt: Options.Broker is empty")
	}
	u, err := url.Parse(o.Broker)
	if err != nil {
		return nil, fmt.Errorf("mqtt: broker URL: %w", err)
	}
	var defaultPort string
	switch u.Scheme {
	case "tcp", "mqtt":
		defaultPort = "1883"
	case "ssl", "tls", "mqtts":
		defaultPort = "8883"
	default:
		return nil, fmt.Errorf("mqtt: broker %s: unsupported scheme %q (want tcp, mqtt, ssl, tls or mqtts)", u.Redacted(), u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("mqtt: broker %s: no host", u.Redacted())
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), defaultPort)
	}
	if o.ClientID == "" {
		return nil, errors.New("mqtt: Options.ClientID is empty")
	}
	if o.StatusTopic != "" {
		if err := validTopic(o.StatusTopic); err != nil {
			return nil, fmt.Errorf("%w (Options.StatusTopic)", err)
		}
	}
	if o.KeepAlive < 0 || o.ConnectTimeout < 0 || o.MaxReconnectInterval < 0 {
		return nil, errors.New("mqtt: negative duration in Options")
	}
	if o.KeepAlive == 0 {
		o.KeepAlive = DefaultKeepAlive
	}
	if o.KeepAlive < time.Second {
		o.KeepAlive = time.Second // MQTT counts keep-alive in whole seconds
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.MaxReconnectInterval == 0 {
		o.MaxReconnectInterval = DefaultMaxReconnectInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}

	c := &Client{
		opts:           o,
		broker:         u.Redacted(),
		scheme:         u.Scheme,
		host:           host,
		log:            o.Logger,
		lost:           make(chan struct{}, 1),
		supervisorDone: make(chan struct{}),
		subs:           make(map[string]subscription),
	}
	c.life, c.stopLife = context.WithCancel(context.Background())

	po := paho.NewClientOptions().
		AddBroker(o.Broker).
		SetClientID(o.ClientID).
		SetProtocolVersion(4). // MQTT 3.1.1 only; no silent 3.1 fallback doubling each failed attempt
		SetCleanSession(!o.PersistentSession).
		SetStore(paho.NewMemoryStore()).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetResumeSubs(false).
		SetOrderMatters(false). // handlers run on their own goroutines and may Publish and wait
		SetKeepAlive(o.KeepAlive).
		SetPingTimeout(min(o.KeepAlive, maxPingTimeout)).
		SetConnectTimeout(o.ConnectTimeout).
		SetWriteTimeout(writeTimeout).
		SetCustomOpenConnectionFn(c.dial).
		SetConnectionLostHandler(c.onConnectionLost)
	if o.Username != "" {
		po.SetUsername(o.Username)
		po.SetPassword(o.Password)
	}
	if o.StatusTopic != "" {
		po.SetBinaryWill(o.StatusTopic, c.statusJSON(false, ReasonConnectionLost), 1, true)
	}
	c.po = po
	c.pc, c.pcDown = paho.NewClient(po), make(chan struct{})
	return c, nil
}

// connectUntil tries to connect until it succeeds, ctx ends or the broker
// refuses us.
func (c *Client) connectUntil(ctx context.Context) error {
	b := backoff.Policy{Initial: minBackoff, Max: c.opts.MaxReconnectInterval}.New()
	var cause error // the most telling attempt error, for the final message
	for attempt := 1; ; attempt++ {
		refused, err := c.connectOnce(ctx)
		if err == nil {
			return nil
		}
		if refused {
			return fmt.Errorf("%w: connect %s: %w", ErrRefused, c.broker, err)
		}
		c.log.Debug("mqtt: connect attempt failed", "broker", c.broker, "attempt", attempt, "err", err)
		if cause == nil || ctx.Err() == nil {
			cause = err // an attempt cut short by ctx says less than an earlier failure
		}
		if ctx.Err() != nil || !sleepCtx(ctx, b.Next()) {
			return fmt.Errorf("mqtt: connect %s: broker unreachable after %d attempt(s): %w (last error: %w)",
				c.broker, attempt, ctx.Err(), cause)
		}
	}
}

// connectOnce makes one connection attempt bounded by ctx and ConnectTimeout.
// refused reports a CONNACK refusal that retrying will not fix.
func (c *Client) connectOnce(ctx context.Context) (refused bool, err error) {
	actx, cancel := context.WithTimeout(ctx, c.opts.ConnectTimeout)
	defer cancel()
	c.dialMu.Lock()
	c.dialCtx = actx
	c.dialMu.Unlock()

	pc := paho.NewClient(c.po) // see handOver
	// Handlers before CONNECT: a persistent session's queued messages
	// arrive right after CONNACK, before afterConnect re-subscribes, and
	// paho leaves a message without a route unacknowledged.
	c.subsMu.Lock()
	for filter, s := range c.subs {
		pc.AddRoute(routeTopic(filter), s.handler())
	}
	c.subsMu.Unlock()
	c.pcMu.Lock()
	c.pc, c.pcDown = pc, make(chan struct{})
	c.pcMu.Unlock()
	tok := pc.Connect()
	// No select on ctx here: the dial honours actx and the handshake deadline
	// is clamped to it (handshakeConn), so the token completes soon after actx
	// ends. Returning earlier could leave a connection coming up unobserved.
	<-tok.Done()
	if err = tok.Error(); err == nil {
		return false, nil
	}
	switch tok.(*paho.ConnectToken).ReturnCode() {
	case packets.ErrRefusedBadProtocolVersion, packets.ErrRefusedIDRejected,
		packets.ErrRefusedBadUsernameOrPassword, packets.ErrRefusedNotAuthorised:
		return true, err
	}
	return false, err
}

// dial is paho's OpenConnectionFunc: it dials with the current attempt's ctx
// so Close and Connect's ctx abort a hanging dial.
func (c *Client) dial(_ *url.URL, _ paho.ClientOptions) (net.Conn, error) {
	c.dialMu.Lock()
	ctx := c.dialCtx
	c.dialMu.Unlock()
	if ctx == nil {
		ctx = c.life
	}
	var (
		conn net.Conn
		err  error
	)
	switch c.scheme {
	case "ssl", "tls", "mqtts":
		d := tls.Dialer{Config: c.opts.TLSConfig}
		conn, err = d.DialContext(ctx, "tcp", c.host)
	default:
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", c.host)
	}
	if err != nil {
		return nil, err
	}
	return newHandshakeConn(ctx, conn), nil
}

// afterConnect restores what a clean session lost: subscriptions first (so a
// command the backend sends on seeing us online is not missed), then the
// online status. Failures are logged; a connection loss in between triggers
// another reconnect that repeats this.
func (c *Client) afterConnect(ctx context.Context) {
	c.upMu.Lock()
	c.upSince = c.opts.Now()
	c.upMu.Unlock()
	c.subsMu.Lock()
	subs := make(map[string]subscription, len(c.subs))
	for f, s := range c.subs {
		subs[f] = s
	}
	c.subsMu.Unlock()
	for filter, s := range subs {
		sctx, cancel := context.WithTimeout(ctx, statusTimeout)
		err := c.subscribe(sctx, filter, s)
		cancel()
		if err != nil {
			c.log.Warn("mqtt: re-subscribe failed", "filter", filter, "err", err)
		}
	}
	if c.opts.StatusTopic == "" {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	if err := c.publish(sctx, c.opts.StatusTopic, c.statusJSON(true, ""), 1, true); err != nil {
		c.log.Warn("mqtt: online status not published", "err", err)
	}
}

// onConnectionLost runs on a paho goroutine after paho has failed all pending
// tokens and marked the client disconnected.
func (c *Client) onConnectionLost(lost paho.Client, err error) {
	c.pcMu.Lock()
	if lost == c.pc {
		select {
		case <-c.pcDown:
		default:
			close(c.pcDown)
		}
	}
	c.pcMu.Unlock()
	c.log.Warn("mqtt: connection lost", "broker", c.broker, "err", err)
	select {
	case c.lost <- struct{}{}:
	default: // a reconnect is already pending
	}
}

// supervise reconnects after each connection loss until Close.
func (c *Client) supervise() {
	defer close(c.supervisorDone)
	for {
		select {
		case <-c.life.Done():
			return
		case <-c.lost:
		}
		b := backoff.Policy{Initial: minBackoff, Max: c.opts.MaxReconnectInterval}.New()
		for attempt := 1; ; attempt++ {
			if !sleepCtx(c.life, b.Next()) {
				return
			}
			if c.paho().IsConnectionOpen() {
				break
			}
			refused, err := c.connectOnce(c.life)
			if err == nil {
				c.log.Info("mqtt: reconnected", "broker", c.broker, "attempts", attempt)
				c.afterConnect(c.life)
				break
			}
			if c.life.Err() != nil {
				return
			}
			if refused { // keep trying: the broker's ACL or credentials may be fixed
				c.log.Warn("mqtt: reconnect refused", "broker", c.broker, "attempt", attempt, "err", err)
			} else {
				c.log.Debug("mqtt: reconnect attempt failed", "broker", c.broker, "attempt", attempt, "err", err)
			}
		}
	}
}

// Publish sends payload to topic and, for QoS 1 and 2, waits for the broker's
// acknowledgement. See the package comment for what nil and errors mean.
// It fails with ErrNotConnected at once while disconnected, with
// ErrInvalidTopic for an empty or wildcard topic, and with ctx's error if ctx
// ends before the acknowledgement (the message may still arrive).
func (c *Client) Publish(ctx context.Context, topic string, payload []byte, qos byte, retained bool) error {
	if c.closed.Load() {
		return fmt.Errorf("%w: publish %q", ErrClosed, topic)
	}
	return c.publish(ctx, topic, payload, qos, retained)
}

func (c *Client) publish(ctx context.Context, topic string, payload []byte, qos byte, retained bool) error {
	wait, err := c.handOver(ctx, topic, payload, qos, retained)
	if err != nil {
		return err
	}
	return wait()
}

// PublishAsync is Publish in two steps, for a caller that keeps several
// QoS 1 messages in flight in order (gateway/outbox's Deliverer). It
// returns once paho has queued the packet for the live connection's
// writer, behind the packets of earlier calls (one writer goroutine per
// connection writes them in that order), and fails at once with
// ErrNotConnected while disconnected. wait then blocks until the PUBACK
// (nil), the loss of the connection (ErrNotConnected) or the end of ctx.
// A packet queued for one connection is never written on a later one:
// paho fails the tokens of a lost connection and the store is reset on
// every connect (package comment).
func (c *Client) PublishAsync(ctx context.Context, topic string, payload []byte, qos byte, retained bool) (wait func() error, err error) {
	if c.closed.Load() {
		return nil, fmt.Errorf("%w: publish %q", ErrClosed, topic)
	}
	return c.handOver(ctx, topic, payload, qos, retained)
}

// ConnectedSince is when the current connection came up (by Options.Now),
// zero while there is none.
func (c *Client) ConnectedSince() time.Time {
	if !c.Connected() {
		return time.Time{}
	}
	c.upMu.Lock()
	defer c.upMu.Unlock()
	return c.upSince
}

func (c *Client) handOver(ctx context.Context, topic string, payload []byte, qos byte, retained bool) (func() error, error) {
	if err := validTopic(topic); err != nil {
		return nil, err
	}
	if qos > 2 {
		return nil, fmt.Errorf("mqtt: publish %q: invalid QoS %d", topic, qos)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mqtt: publish %q: %w", topic, err)
	}
	// One paho client per connection attempt (connectOnce): paho queues
	// publishes on a channel that outlives its connections, so a Publish
	// that found the connection up but whose packet was not taken before
	// it died would wait (up to writeTimeout) and then be written on the
	// next connection, ahead of everything published after it. A packet
	// handed to this connection's client can only go out on it.
	pc, down := c.current()
	if !pc.IsConnectionOpen() {
		return nil, fmt.Errorf("%w: publish %q", ErrNotConnected, topic)
	}
	// paho keeps the slice until the acknowledgement, possibly after we gave
	// up on ctx; copy it so the caller may reuse its buffer.
	payload = bytes.Clone(payload)
	// paho's Publish can block (up to writeTimeout) handing the packet to a
	// writer that just died; run it aside so ctx is honoured.
	tokc := make(chan paho.Token, 1)
	go func() { tokc <- pc.Publish(topic, qos, retained, payload) }()
	var tok paho.Token
	select {
	case tok = <-tokc:
	case <-down:
		// paho's Publish found the connection up but its writer gone; it
		// gives up by itself after writeTimeout, on this client only.
		return nil, fmt.Errorf("%w: publish %q: connection lost before the hand-over", ErrNotConnected, topic)
	case <-ctx.Done():
		return nil, fmt.Errorf("mqtt: publish %q: %w", topic, ctx.Err())
	}
	// A token already failed means paho refused the hand-over (it found
	// the connection down): not handed over.
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return nil, c.tokenError(topic, err)
		}
	default:
	}
	return func() error {
		select {
		case <-tok.Done():
		case <-ctx.Done():
			return fmt.Errorf("mqtt: publish %q: no acknowledgement: %w", topic, ctx.Err())
		}
		if err := tok.Error(); err != nil {
			return c.tokenError(topic, err)
		}
		return nil
	}, nil
}

func (c *Client) tokenError(topic string, err error) error {
	if lostConnection(err) {
		return fmt.Errorf("%w: publish %q: %w", ErrNotConnected, topic, err)
	}
	return fmt.Errorf("mqtt: publish %q: %w", topic, err)
}

// Subscribe registers fn for messages matching filter and waits for the
// broker's SUBACK. The registration outlives connections: it is re-sent after
// every reconnect, even when this call fails with ErrNotConnected (the error
// then only says it is not active yet). Subscribing the same filter again
// replaces fn. A filter the broker refuses is forgotten and reported with
// ErrRefused. fn runs on its own goroutine per message (in no guaranteed
// order) and may call Publish; payload must not be logged (it may hold
// identifiers).
func (c *Client) Subscribe(ctx context.Context, filter string, qos byte, fn func(topic string, payload []byte)) error {
	if c.closed.Load() {
		return fmt.Errorf("%w: subscribe %q", ErrClosed, filter)
	}
	if err := validFilter(filter); err != nil {
		return err
	}
	if qos > 2 {
		return fmt.Errorf("mqtt: subscribe %q: invalid QoS %d", filter, qos)
	}
	if fn == nil {
		return fmt.Errorf("mqtt: subscribe %q: nil handler", filter)
	}
	s := subscription{qos: qos, fn: fn}
	c.subsMu.Lock()
	c.subs[filter] = s
	c.subsMu.Unlock()
	err := c.subscribe(ctx, filter, s)
	if errors.Is(err, ErrRefused) {
		c.subsMu.Lock()
		delete(c.subs, filter)
		c.subsMu.Unlock()
	}
	return err
}

func (c *Client) subscribe(ctx context.Context, filter string, s subscription) error {
	pc := c.paho()
	if !pc.IsConnectionOpen() {
		return fmt.Errorf("%w: subscribe %q", ErrNotConnected, filter)
	}
	tokc := make(chan paho.Token, 1)
	go func() { tokc <- pc.Subscribe(filter, s.qos, s.handler()) }() // may block like Publish
	var tok paho.Token
	select {
	case tok = <-tokc:
	case <-ctx.Done():
		return fmt.Errorf("mqtt: subscribe %q: %w", filter, ctx.Err())
	}
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return fmt.Errorf("mqtt: subscribe %q: no SUBACK: %w", filter, ctx.Err())
	}
	if err := tok.Error(); err != nil {
		if lostConnection(err) {
			return fmt.Errorf("%w: subscribe %q: %w", ErrNotConnected, filter, err)
		}
		return fmt.Errorf("mqtt: subscribe %q: %w", filter, err)
	}
	for _, code := range tok.(*paho.SubscribeToken).Result() {
		if code == 0x80 { // SUBACK failure return code
			return fmt.Errorf("%w: subscribe %q", ErrRefused, filter)
		}
	}
	return nil
}

// Connected reports whether the client has a live connection right now.
func (c *Client) Connected() bool {
	return !c.closed.Load() && c.paho().IsConnectionOpen()
}

// Close stops reconnecting, publishes the retained offline status (reason
// "shutdown") if connected, waiting up to a few seconds for its PUBACK, and
// disconnects cleanly so the broker discards the last will. Publish and
// Subscribe fail with ErrClosed afterwards. Close is idempotent.
func (c *Client) Close() {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.stopLife()
		<-c.supervisorDone // no (re)connect or online status can follow
		if c.opts.StatusTopic != "" && c.paho().IsConnectionOpen() {
			ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
			err := c.publish(ctx, c.opts.StatusTopic, c.statusJSON(false, ReasonShutdown), 1, true)
			cancel()
			if err != nil {
				c.log.Warn("mqtt: offline status not published", "err", err)
			}
		}
		c.paho().Disconnect(disconnectQuiesce)
		c.log.Info("mqtt: closed", "broker", c.broker)
	})
}

func (c *Client) paho() paho.Client {
	pc, _ := c.current()
	return pc
}

// current is the paho client of the current connection attempt and a
// channel closed when its connection is lost.
func (c *Client) current() (paho.Client, <-chan struct{}) {
	c.pcMu.Lock()
	defer c.pcMu.Unlock()
	return c.pc, c.pcDown
}

// lostConnection reports whether a paho token error means the connection was
// (or went) down. paho v1.5 has no sentinels for these; the texts are pinned
// by TestInFlightPublishFailsOnConnectionLoss and the dead-broker test.
func lostConnection(err error) bool {
	msg := err.Error()
	return errors.Is(err, paho.ErrNotConnected) ||
		strings.Contains(msg, "connection lost") || // token failed by paho on connection loss
		strings.Contains(msg, "broken by timeout") || // writer gone (connection dying)
		strings.Contains(msg, "not currently connected")
}

func (c *Client) statusJSON(online bool, reason string) []byte {
	s := c.opts.StatusInfo
	s.Schema, s.Online, s.Reason = StatusSchema, online, reason
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // cannot happen for this struct
	}
	return b
}

// validTopic checks a topic name for PUBLISH (MQTT 3.1.1 §4.7).
func validTopic(t string) error {
	if err := validTopicString(t); err != nil {
		return err
	}
	if strings.ContainsAny(t, "+#") {
		return fmt.Errorf("%w %q: wildcard in topic name", ErrInvalidTopic, t)
	}
	return nil
}

// validFilter checks a topic filter for SUBSCRIBE (MQTT 3.1.1 §4.7.1).
func validFilter(f string) error {
	if err := validTopicString(f); err != nil {
		return err
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return fmt.Errorf("%w %q: '#' must be the last level", ErrInvalidTopic, f)
		case l != "#" && l != "+" && strings.ContainsAny(l, "+#"):
			return fmt.Errorf("%w %q: wildcard must fill a whole level", ErrInvalidTopic, f)
		}
	}
	return nil
}

func validTopicString(t string) error {
	switch {
	case t == "":
		return fmt.Errorf("%w: empty", ErrInvalidTopic)
	case len(t) > maxTopicLen:
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidTopic, maxTopicLen)
	case !utf8.ValidString(t):
		return fmt.Errorf("%w %q: not UTF-8", ErrInvalidTopic, t)
	case strings.ContainsRune(t, 0):
		return fmt.Errorf("%w %q: contains NUL", ErrInvalidTopic, t)
	}
	return nil
}

// sleepCtx waits d or until ctx ends; it reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
