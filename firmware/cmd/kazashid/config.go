package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kazashi/kazashi/hw/board"
)

// Config is the daemon's configuration file (JSON). Relative paths are
// resolved against the file's directory.
type Config struct {
	// DeviceID names this kiosk in topics and events.
	DeviceID string `json:"device_id"`
	Reader   struct {
		// PN532Config: driver ("pn532-uart", "pn532-spi" or
		// "pn532-i2c"), port (UART device, e.g. /dev/ttyAMA0), spi_device
		// and spi_hz (default 1 MHz, at most 5 MHz), i2c_bus (e.g. "1"),
		// irq_gpio (P70_IRQ for SPI and I2C; empty: poll the status).
		board.PN532Config
		// Baud is the HSU speed the chip is switched to after start-up
		// (SetSerialBaudrate): 115200 (the power-on speed, default) up to
		// 921600. The chip goes back to 115200 on close and after a reset.
		Baud int `json:"baud"`
		// ISODEP chooses who runs ISO/IEC 14443-4 for Type B cards:
		// "software" (the host, 256-byte frames; default, the faster
		// one measured by make bench) or "firmware" (the chip).
		ISODEP string `json:"isodep"`
		// TypeA also polls for Type A targets (phones).
		TypeA bool `json:"type_a"`
		// PollInterval is the pause between two polls of an empty field.
		PollInterval Duration `json:"poll_interval"`
		// ACKTimeout bounds the wait for the chip's ACK (default 100 ms;
		// raise it for the simulator on a loaded machine or slow USB-UART
		// bridges).
		ACKTimeout Duration `json:"ack_timeout"`
		// ResetGPIO names the GPIO wired to the PN532's RSTPD_N (e.g.
		// "GPIO17"); empty: no hardware reset.
		ResetGPIO string `json:"reset_gpio"`
	} `json:"reader"`
	// Profile is the service profile every tap of this kiosk runs.
	Profile ProfileConfig `json:"profile"`
	// HolderInput is the local endpoint where a PIN pad, the kiosk screen
	// or a test types the holder's secrets.
	HolderInput struct {
		// Socket is the Unix socket path (created 0600 in a 0700 folder).
		Socket string `json:"socket"`
		// Timeout bounds the wait for one answer (default 60 s); it is
		// not counted in the card read timeout.
		Timeout Duration `json:"timeout"`
	} `json:"holder_input"`
	Trust struct {
		// Anchors are PEM or DER root certificates for user-authentication
		// certificates; empty means the real JPKI user-authentication roots
		// (2019 and 2023 generations) shipped with Kazashi.
		Anchors []string `json:"anchors"`
		// CRLs are DER CRLs issued by the anchors.
		CRLs []string `json:"crls"`
		// SignAnchors and SignCRLs are the same for signature certificates
		// (profiles sign and register); empty anchors mean the shipped JPKI
		// signature roots. A signature certificate is never checked against
		// the authentication anchors, nor the other way round.
		SignAnchors []string `json:"sign_anchors"`
		SignCRLs    []string `json:"sign_crls"`
		// CVAnchors are CA keys for the card applications' CV certificates
		// (face-check, attributes), in addition to the shipped ones:
		// production keys (IDs 5…) outside test mode, J-LIS test keys (6…)
		// in test mode. A key whose ID does not fit the mode is refused.
		CVAnchors []CVAnchorConfig `json:"cv_anchors"`
		// AllowTest accepts O=JPKI-TEST hierarchies: demo and test only.
		AllowTest bool `json:"allow_test"`
	} `json:"trust"`
	// StateDir holds what the kiosk keeps across restarts (default
	// /var/lib/kazashi): the revocation store and the trusted clock.
	StateDir   string           `json:"state_dir"`
	Revocation RevocationConfig `json:"revocation"`
	// Outbox is the durable queue of events waiting for the broker.
	Outbox struct {
		// Path (default <state_dir>/outbox.db).
		Path string `json:"path"`
		// MaxMessages and MaxBytes bound it (defaults 100 000 and 64 MiB);
		// a full outbox refuses new events and keeps the queued ones.
		MaxMessages int   `json:"max_messages"`
		MaxBytes    int64 `json:"max_bytes"`
	} `json:"outbox"`
	Clock ClockConfig `json:"clock"`
	MQTT  struct {
		// Broker is tcp://host:port or ssl://host:port (mutual TLS: see
		// TLS). Empty is an error unless Embedded is set.
		Broker string `json:"broker"`
		// Embedded starts a broker inside the daemon on EmbeddedListen
		// (loopback only) and publishes to it: for the demo and for a
		// backend on the same machine. Never the default: a kiosk
		// without a broker would have its events acknowledged by
		// nobody.
		Embedded       bool   `json:"embedded"`
		EmbeddedListen string `json:"embedded_listen"`
		TopicPrefix    string `json:"topic_prefix"`
		ClientID       string `json:"client_id"`
		Username       string `json:"username"`
		PasswordFile   string `json:"password_file"`
		// TLS: the broker CA (pinned: no system roots), the device
		// certificate and key (mutual TLS; the certificate's CN is the
		// device id the broker's ACL uses) and the broker's name.
		TLS struct {
			CAFile     string `json:"ca_file"`
			CertFile   string `json:"cert_file"`
			KeyFile    string `json:"key_file"`
			ServerName string `json:"server_name"`
		} `json:"tls"`
		// MaxPayload is the broker's packet limit minus headers (default
		// 200 KiB, below the shipped Mosquitto max_packet_size of 256
		// KiB): larger events are quarantined instead of sent.
		MaxPayload int `json:"max_payload"`
		// TelemetryInterval (default 60s).
		TelemetryInterval Duration `json:"telemetry_interval"`
	} `json:"mqtt"`
	// PseudonymKeyFile holds the per-deployment key (hex, ≥ 16 bytes)
	// that turns card issuer+serial into the pseudonymous card_id.
	PseudonymKeyFile string `json:"pseudonym_key_file"`
	// ShutdownGrace bounds the time from SIGTERM to exit spent sending
	// queued events and the offline status (default 3s); what is not
	// sent stays in the outbox.
	ShutdownGrace Duration `json:"shutdown_grace"`
	// LogLevel: debug, info, warn, error.
	LogLevel string `json:"log_level"`
}

// ProfileConfig selects and tunes the service profile.
type ProfileConfig struct {
	// Name: card-check (default), face-check, pin-auth, sign, attributes
	// or register; the README says what each proves.
	Name string `json:"name"`
	// Service names the pseudonym domain: card_id and card_key_id are
	// keyed per service, so two services of one deployment cannot join
	// their records. Default "default".
	Service string `json:"service"`
	// TriesFloor: no secret is presented when fewer tries are left
	// (default 2); the holder is sent to the counter instead.
	TriesFloor int `json:"tries_floor"`
	// IndividualNumberPermitted lets the attributes profile read the
	// 12-digit individual number. Set it only for a service that the My
	// Number Act permits to collect it.
	IndividualNumberPermitted bool `json:"individual_number_permitted"`
	// DocumentFile is the document whose SHA-256 the holder signs in the
	// sign and register profiles.
	DocumentFile string `json:"document_file"`
}

// RevocationConfig places the revocation store and says how fresh its
// data must be.
type RevocationConfig struct {
	// IndexDir is the revocation store (default <state_dir>/revocation).
	// `kazashictl crl import --index` writes into it too; the daemon maps
	// the new index at its next poll or on SIGHUP.
	IndexDir string `json:"index_dir"`
	// Inbox lists more CRL files or directories of *.crl files to import
	// when they change, besides trust.crls and trust.sign_crls.
	Inbox []string `json:"inbox"`
	// Poll is how often the CRL files and the store are checked for
	// changes (default 30 s).
	Poll Duration `json:"poll"`
	// Grace lets a CRL past its nextUpdate still judge certificates for
	// this long (default 0: fail closed with crl-stale). Events carry
	// the data's age either way.
	Grace Duration `json:"grace"`
}

// ClockConfig tunes the trusted clock.
type ClockConfig struct {
	// State is the clock's state file (default <state_dir>/clock.json).
	State string `json:"state"`
	// MaxUnsyncedAhead: a system clock not known to be NTP-synchronised
	// that runs more than this ahead of the trusted lower bound is not
	// believed (default 168h).
	MaxUnsyncedAhead Duration `json:"max_unsynced_ahead"`
}

// CVAnchorConfig is one CV CA public key.
type CVAnchorConfig struct {
	// ID as in the CV certificate's issuer field, e.g. "6990023/001".
	ID string `json:"id"`
	// Purpose: "surface" (card surface AP) or "support" (input support AP).
	Purpose string `json:"purpose"`
	// File holds the key as PEM PUBLIC KEY.
	File string `json:"file"`
}

// Profiles the daemon knows.
var profiles = []string{"card-check", "face-check", "pin-auth", "sign", "attributes", "register"}

// Duration is a time.Duration written as "200ms" in JSON.
type Duration time.Duration

// UnmarshalJSON reads "200ms"-style strings.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"200ms\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes "200ms"-style strings.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// LoadConfig reads, defaults and validates a configuration file.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var c Config
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	c.defaults()
	c.resolve(filepath.Dir(path))
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return &c, nil
}

func (c *Config) defaults() {
	if c.Reader.Driver == "" {
		c.Reader.Driver = "pn532-uart"
	}
	if c.Reader.Baud == 0 {
		c.Reader.Baud = 115200
	}
	if c.Reader.SPIHz == 0 {
		c.Reader.SPIHz = 1_000_000 // UM0701-02 §6.2.5: up to 5 MHz; 1 MHz is robust on long wires
	}
	if c.Reader.ISODEP == "" {
		c.Reader.ISODEP = "software"
	}
	if c.Reader.PollInterval == 0 {
		// A tap is noticed within ~0.2 s; the chip's own activation retries
		// add a few ms per poll.
		c.Reader.PollInterval = Duration(150 * time.Millisecond)
	}
	if c.MQTT.EmbeddedListen == "" {
		c.MQTT.EmbeddedListen = "127.0.0.1:1883"
	}
	if c.MQTT.TopicPrefix == "" {
		c.MQTT.TopicPrefix = "kazashi"
	}
	if c.MQTT.ClientID == "" {
		c.MQTT.ClientID = "kazashid-" + c.DeviceID
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = Duration(3 * time.Second)
	}
	if c.MQTT.MaxPayload == 0 {
		c.MQTT.MaxPayload = 200 << 10
	}
	if c.MQTT.TelemetryInterval == 0 {
		c.MQTT.TelemetryInterval = Duration(time.Minute)
	}
	if c.Profile.Name == "" {
		c.Profile.Name = "card-check"
	}
	if c.Profile.Service == "" {
		c.Profile.Service = "default"
	}
	if c.Profile.TriesFloor == 0 {
		c.Profile.TriesFloor = 2
	}
	if c.StateDir == "" {
		c.StateDir = "/var/lib/kazashi"
	}
	if c.Revocation.Poll == 0 {
		c.Revocation.Poll = Duration(30 * time.Second)
	}
	if c.Clock.MaxUnsyncedAhead == 0 {
		c.Clock.MaxUnsyncedAhead = Duration(7 * 24 * time.Hour)
	}
	if c.HolderInput.Timeout == 0 {
		c.HolderInput.Timeout = Duration(60 * time.Second)
	}
}

// needsInput reports whether the profile asks the holder for a secret.
func (c *Config) needsInput() bool { return c.Profile.Name != "card-check" }

// needsSign reports whether the profile reads the signature certificate.
func (c *Config) needsSign() bool { return c.Profile.Name == "sign" || c.Profile.Name == "register" }

func (c *Config) resolve(dir string) {
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	for i := range c.Trust.Anchors {
		c.Trust.Anchors[i] = abs(c.Trust.Anchors[i])
	}
	for i := range c.Trust.CRLs {
		c.Trust.CRLs[i] = abs(c.Trust.CRLs[i])
	}
	for i := range c.Trust.SignAnchors {
		c.Trust.SignAnchors[i] = abs(c.Trust.SignAnchors[i])
	}
	for i := range c.Trust.SignCRLs {
		c.Trust.SignCRLs[i] = abs(c.Trust.SignCRLs[i])
	}
	for i := range c.Trust.CVAnchors {
		c.Trust.CVAnchors[i].File = abs(c.Trust.CVAnchors[i].File)
	}
	for i := range c.Revocation.Inbox {
		c.Revocation.Inbox[i] = abs(c.Revocation.Inbox[i])
	}
	c.StateDir = abs(c.StateDir)
	if c.Revocation.IndexDir == "" {
		c.Revocation.IndexDir = filepath.Join(c.StateDir, "revocation")
	}
	if c.Clock.State == "" {
		c.Clock.State = filepath.Join(c.StateDir, "clock.json")
	}
	if c.Outbox.Path == "" {
		c.Outbox.Path = filepath.Join(c.StateDir, "outbox.db")
	}
	c.Outbox.Path = abs(c.Outbox.Path)
	c.Revocation.IndexDir = abs(c.Revocation.IndexDir)
	c.Clock.State = abs(c.Clock.State)
	c.HolderInput.Socket = abs(c.HolderInput.Socket)
	c.Profile.DocumentFile = abs(c.Profile.DocumentFile)
	c.PseudonymKeyFile = abs(c.PseudonymKeyFile)
	c.MQTT.PasswordFile = abs(c.MQTT.PasswordFile)
	c.MQTT.TLS.CAFile = abs(c.MQTT.TLS.CAFile)
	c.MQTT.TLS.CertFile = abs(c.MQTT.TLS.CertFile)
	c.MQTT.TLS.KeyFile = abs(c.MQTT.TLS.KeyFile)
}

func (c *Config) validate() error {
	var errs []error
	if c.DeviceID == "" || strings.ContainsAny(c.DeviceID, "/#+ ") {
		errs = append(errs, fmt.Errorf("device_id %q must be set and contain no '/', '#', '+' or spaces", c.DeviceID))
	}
	switch c.Reader.Driver {
	case "pn532-uart":
		if c.Reader.Port == "" {
			errs = append(errs, errors.New("reader.port must name the serial device"))
		}
		switch c.Reader.Baud {
		case 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600:
		default:
			errs = append(errs, fmt.Errorf("reader.baud %d: one of 9600 … 921600", c.Reader.Baud))
		}
	case "pn532-spi":
		if c.Reader.SPIDevice == "" {
			errs = append(errs, errors.New("reader.spi_device must name the SPI device (e.g. /dev/spidev0.0)"))
		}
		if c.Reader.SPIHz < 10_000 || c.Reader.SPIHz > 5_000_000 {
			errs = append(errs, fmt.Errorf("reader.spi_hz %d: the PN532 runs SPI up to 5 MHz", c.Reader.SPIHz))
		}
	case "pn532-i2c":
		if c.Reader.I2CBus == "" {
			errs = append(errs, errors.New("reader.i2c_bus must name the I2C bus (e.g. \"1\")"))
		}
	default:
		errs = append(errs, fmt.Errorf("reader.driver %q: one of pn532-uart, pn532-spi, pn532-i2c", c.Reader.Driver))
	}
	if c.Reader.ISODEP != "software" && c.Reader.ISODEP != "firmware" {
		errs = append(errs, fmt.Errorf("reader.isodep %q: \"software\" or \"firmware\"", c.Reader.ISODEP))
	}
	if len(c.Trust.CRLs) == 0 && len(c.Revocation.Inbox) == 0 {
		errs = append(errs, errors.New("trust.crls (or revocation.inbox) must list at least one CRL: without one every card would be refused (crl-unavailable)"))
	}
	if c.Revocation.Grace < 0 || c.Revocation.Poll < 0 {
		errs = append(errs, errors.New("revocation.grace and revocation.poll must not be negative"))
	}
	if !slices.Contains(profiles, c.Profile.Name) {
		errs = append(errs, fmt.Errorf("profile.name %q: use one of %s", c.Profile.Name, strings.Join(profiles, ", ")))
	}
	if strings.ContainsRune(c.Profile.Service, 0) {
		errs = append(errs, errors.New("profile.service must not contain NUL"))
	}
	if c.Profile.TriesFloor < 1 {
		errs = append(errs, fmt.Errorf("profile.tries_floor %d: at least 1 (a secret is never presented with no tries left)", c.Profile.TriesFloor))
	}
	if c.Profile.IndividualNumberPermitted && c.Profile.Name != "attributes" {
		errs = append(errs, errors.New("profile.individual_number_permitted applies only to the attributes profile"))
	}
	if c.needsInput() && c.HolderInput.Socket == "" {
		errs = append(errs, fmt.Errorf("profile %s asks the holder for a secret: holder_input.socket must be set", c.Profile.Name))
	}
	if c.needsSign() {
		if len(c.Trust.SignCRLs) == 0 {
			errs = append(errs, fmt.Errorf("profile %s checks signature certificates: trust.sign_crls must list at least one CRL", c.Profile.Name))
		}
		if c.Profile.DocumentFile == "" {
			errs = append(errs, fmt.Errorf("profile %s signs a document: profile.document_file must be set", c.Profile.Name))
		}
	}
	for i, a := range c.Trust.CVAnchors {
		if a.ID == "" || a.File == "" || (a.Purpose != "surface" && a.Purpose != "support") {
			errs = append(errs, fmt.Errorf("trust.cv_anchors[%d]: id, file and purpose (surface or support) are required", i))
		}
	}
	if c.PseudonymKeyFile == "" {
		errs = append(errs, errors.New("pseudonym_key_file must be set"))
	}
	switch {
	case c.MQTT.Broker == "" && !c.MQTT.Embedded:
		errs = append(errs, errors.New("mqtt.broker must name the backend's broker (or set mqtt.embedded for a demo or a backend on this machine)"))
	case c.MQTT.Broker != "" && c.MQTT.Embedded:
		errs = append(errs, errors.New("mqtt.broker and mqtt.embedded exclude each other"))
	}
	tls := c.MQTT.TLS
	if (tls.CertFile == "") != (tls.KeyFile == "") {
		errs = append(errs, errors.New("mqtt.tls.cert_file and mqtt.tls.key_file go together"))
	}
	if tls.CertFile != "" && tls.CAFile == "" {
		errs = append(errs, errors.New("mqtt.tls.ca_file must pin the broker's CA when a device certificate is used"))
	}
	if c.ShutdownGrace < 0 || c.MQTT.TelemetryInterval < 0 || c.MQTT.MaxPayload < 0 {
		errs = append(errs, errors.New("shutdown_grace, mqtt.telemetry_interval and mqtt.max_payload must not be negative"))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log_level %q: use debug, info, warn or error", c.LogLevel))
	}
	return errors.Join(errs...)
}

// readPseudonymKey loads the hex key; the error never echoes the content.
func readPseudonymKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pseudonym key: %w", err)
	}
	k, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("pseudonym key %s: not hex", path)
	}
	if len(k) < 16 {
		return nil, fmt.Errorf("pseudonym key %s: %d bytes, need at least 16", path, len(k))
	}
	return k, nil
}
