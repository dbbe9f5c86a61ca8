package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Config is the daemon's configuration file (JSON). Relative paths are
// resolved against the file's directory.
type Config struct {
	// DeviceID names this kiosk in topics and events.
	DeviceID string `json:"device_id"`
	Reader   struct {
		// Driver is the frontend: "pn532-uart".
		Driver string `json:"driver"`
		// Port is the serial device, e.g. /dev/ttyAMA0.
		Port string `json:"port"`
		Baud int    `json:"baud"`
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
	Trust struct {
		// Anchors are PEM or DER root certificates; empty means the real
		// JPKI user-authentication root shipped with Kazashi.
		Anchors []string `json:"anchors"`
		// CRLs are DER CRLs issued by the anchors.
		CRLs []string `json:"crls"`
		// AllowTest accepts O=JPKI-TEST hierarchies: demo and test only.
		AllowTest bool `json:"allow_test"`
	} `json:"trust"`
	MQTT struct {
		// Broker is tcp://host:port; empty starts an embedded broker on
		// EmbeddedListen (loopback only).
		Broker         string `json:"broker"`
		EmbeddedListen string `json:"embedded_listen"`
		TopicPrefix    string `json:"topic_prefix"`
		ClientID       string `json:"client_id"`
		Username       string `json:"username"`
		PasswordFile   string `json:"password_file"`
	} `json:"mqtt"`
	// PseudonymKeyFile holds the per-deployment key (hex, ≥ 16 bytes)
	// that turns card issuer+serial into the pseudonymous card_id.
	PseudonymKeyFile string `json:"pseudonym_key_file"`
	// LogLevel: debug, info, warn, error.
	LogLevel string `json:"log_level"`
}

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
}

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
	c.PseudonymKeyFile = abs(c.PseudonymKeyFile)
	c.MQTT.PasswordFile = abs(c.MQTT.PasswordFile)
}

func (c *Config) validate() error {
	var errs []error
	if c.DeviceID == "" || strings.ContainsAny(c.DeviceID, "/#+ ") {
		errs = append(errs, fmt.Errorf("device_id %q must be set and contain no '/', '#', '+' or spaces", c.DeviceID))
	}
	if c.Reader.Driver != "pn532-uart" {
		errs = append(errs, fmt.Errorf("reader.driver %q: only \"pn532-uart\" is supported", c.Reader.Driver))
	}
	if c.Reader.Port == "" {
		errs = append(errs, errors.New("reader.port must name the serial device"))
	}
	if len(c.Trust.CRLs) == 0 {
		errs = append(errs, errors.New("trust.crls must list at least one CRL: without one every card would be refused (crl-unavailable)"))
	}
	if c.PseudonymKeyFile == "" {
		errs = append(errs, errors.New("pseudonym_key_file must be set"))
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
