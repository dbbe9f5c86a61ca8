package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kazashi/kazashi/provisioning/testpki"
)

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadConfigDefaultsAndPaths(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, filepath.Join(dir, "k.json"), `{
  "device_id": "kiosk-7",
  "reader": {"port": "/dev/ttyAMA0"},
  "trust": {"crls": ["crl/auth.crl"], "anchors": ["/etc/abs.pem"]},
  "mqtt": {"broker": "ssl://broker.example:8883", "tls": {"ca_file": "tls/ca.pem", "cert_file": "tls/kiosk-7.pem", "key_file": "tls/kiosk-7.key"}},
  "pseudonym_key_file": "key"
}`)
	c, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if tl := c.MQTT.TLS; tl.CAFile != filepath.Join(dir, "tls/ca.pem") || tl.CertFile != filepath.Join(dir, "tls/kiosk-7.pem") || tl.KeyFile != filepath.Join(dir, "tls/kiosk-7.key") {
		t.Errorf("tls paths %+v", tl)
	}
	if time.Duration(c.ShutdownGrace) != 3*time.Second || c.MQTT.MaxPayload != 200<<10 || time.Duration(c.MQTT.TelemetryInterval) != time.Minute || c.MQTT.Embedded {
		t.Errorf("uplink defaults: grace %v, max payload %d, telemetry %v, embedded %v", c.ShutdownGrace, c.MQTT.MaxPayload, c.MQTT.TelemetryInterval, c.MQTT.Embedded)
	}
	if c.Reader.Driver != "pn532-uart" || c.Reader.Baud != 115200 || time.Duration(c.Reader.PollInterval) != 150*time.Millisecond {
		t.Errorf("reader defaults %+v", c.Reader)
	}
	if c.MQTT.TopicPrefix != "kazashi" || c.MQTT.ClientID != "kazashid-kiosk-7" || c.MQTT.EmbeddedListen != "127.0.0.1:1883" || c.LogLevel != "info" {
		t.Errorf("mqtt defaults %+v, log %s", c.MQTT, c.LogLevel)
	}
	if c.Trust.CRLs[0] != filepath.Join(dir, "crl/auth.crl") || c.Trust.Anchors[0] != "/etc/abs.pem" || c.PseudonymKeyFile != filepath.Join(dir, "key") {
		t.Errorf("paths not resolved against the config's folder: %+v %s", c.Trust, c.PseudonymKeyFile)
	}
	if c.Trust.AllowTest {
		t.Error("test hierarchies allowed by default")
	}
	if c.Profile.Name != "card-check" || c.Profile.Service != "default" || c.Profile.TriesFloor != 2 || c.Profile.IndividualNumberPermitted {
		t.Errorf("profile defaults %+v", c.Profile)
	}
}

// A CV anchor whose key ID does not fit the mode stops the start: J-LIS
// test keys (6…) never in production, production keys (5…) never in test
// mode.
func TestCVAnchorModes(t *testing.T) {
	pki, err := testpki.Shared()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := pki.WriteDir(filepath.Join(dir, "pki")); err != nil {
		t.Fatal(err)
	}
	a := pki.CVAnchors[0]
	file := filepath.Join(dir, "pki", testpki.CVAnchorFile(a))
	for _, c := range []struct {
		id        string
		allowTest bool
		ok        bool
	}{
		{a.IDString, true, true},
		{a.IDString, false, false},
		{"5000023/001", true, false},
		{"not-an-id", true, false},
	} {
		cfg := &Config{}
		cfg.Trust.AllowTest = c.allowTest
		cfg.Trust.CVAnchors = []CVAnchorConfig{{ID: c.id, Purpose: a.Purpose, File: file}}
		m, err := loadCVAnchors(cfg)
		if (err == nil) != c.ok {
			t.Errorf("id %s test=%v: err %v", c.id, c.allowTest, err)
			continue
		}
		if err != nil {
			continue
		}
		// The shipped J-LIS test keys and the configured one, nothing of production.
		if len(m["surface"]) != 2 || len(m["support"]) != 1 {
			t.Errorf("anchors %v", m)
		}
	}
	prod, err := loadCVAnchors(&Config{})
	if err != nil || len(prod["surface"]) != 1 || len(prod["support"]) != 1 {
		t.Fatalf("production anchors %v %v", prod, err)
	}
	for _, keys := range prod {
		for id := range keys {
			if !id.Production() {
				t.Errorf("production mode holds %s", id)
			}
		}
	}
}

func TestLoadConfigErrors(t *testing.T) {
	cases := map[string]struct{ json, want string }{
		"unknown key":               {`{"device_id":"a","reader":{"port":"x"},"trust":{"crls":["c"]},"pseudonym_key_file":"k","colour":"red"}`, `unknown field "colour"`},
		"no device":                 {`{"reader":{"port":"x"},"trust":{"crls":["c"]},"pseudonym_key_file":"k"}`, "device_id"},
		"slash in id":               {`{"device_id":"a/b","reader":{"port":"x"},"trust":{"crls":["c"]},"pseudonym_key_file":"k"}`, "device_id"},
		"no port":                   {`{"device_id":"a","trust":{"crls":["c"]},"pseudonym_key_file":"k"}`, "reader.port"},
		"no crl":                    {`{"device_id":"a","reader":{"port":"x"},"pseudonym_key_file":"k"}`, "trust.crls"},
		"bad driver":                {`{"device_id":"a","reader":{"port":"x","driver":"acr122"},"trust":{"crls":["c"]},"pseudonym_key_file":"k"}`, "reader.driver"},
		"bad duration":              {`{"device_id":"a","reader":{"port":"x","poll_interval":150},"trust":{"crls":["c"]},"pseudonym_key_file":"k"}`, "duration"},
		"bad log level":             {`{"device_id":"a","reader":{"port":"x"},"trust":{"crls":["c"]},"pseudonym_key_file":"k","log_level":"loud"}`, "log_level"},
		"bad profile":               {`{"device_id":"a","reader":{"port":"x"},"trust":{"crls":["c"]},"pseudonym_key_file":"k","profile":{"name":"trust-me"}}`, "profile.name"},
		"pin without input":         {`{"device_id":"a","reader":{"port":"x"},"trust":{"crls":["c"]},"pseudonym_key_file":"k","profile":{"name":"pin-auth"}}`, "holder_input.socket"},
		"sign without sign CRL":     {`{"device_id":"a","reader":{"port":"x"},"trust":{"crls":["c"]},"pseudonym_key_file":"k","holder_input":{"socket":"s"},"profile":{"name":"sign","document_file":"d"}}`, "trust.sign_crls"},
		"sign without document":     {`{"device_id":"a","reader":{"port":"x"},"trust":{"crls":["c"],"sign_crls":["s"]},"pseudonym_key_file":"k","holder_input":{"socket":"s"},"profile":{"name":"register"}}`, "profile.document_file"},
		"number outside attributes": {`{"device_id":"a","reader":{"port":"x"},"trust":{"crls":["c"]},"pseudonym_key_file":"k","holder_input":{"socket":"s"},"profile":{"name":"face-check","individual_number_permitted":true}}`, "individual_number_permitted"},
		"floor zero":                {`{"device_id":"a","reader":{"port":"x"},"trust":{"crls":["c"]},"pseudonym_key_file":"k","profile":{"tries_floor":-1}}`, "tries_floor"},
		"cv anchor purpose":         {`{"device_id":"a","reader":{"port":"x"},"trust":{"crls":["c"],"cv_anchors":[{"id":"6990023/001","file":"f","purpose":"jpki"}]},"pseudonym_key_file":"k"}`, "cv_anchors[0]"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			p := writeFile(t, filepath.Join(t.TempDir(), "k.json"), c.json)
			_, err := LoadConfig(p)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want mention of %q", err, c.want)
			}
		})
	}
}

// TestRunRefusesBadTrustMaterial: a tampered CRL, a CRL from a stranger, a
// short pseudonym key or a test anchor outside test mode stop the daemon at
// start with an error that says why, and never echo the key.
func TestRunRefusesBadTrustMaterial(t *testing.T) {
	pki, err := testpki.Generate(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	other, err := testpki.Generate(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(pki.CRL)
	tampered[len(tampered)-10] ^= 0xFF // inside the signature
	cases := []struct {
		name      string
		crl       []byte
		key       string
		allowTest bool
		want      string
	}{
		{"tampered CRL", tampered, strings.Repeat("ab", 32), true, "no usable revocation data: " + "%DIR%/bad.crl: revocation: CRL not signed by a given issuer"},
		{"CRL of another CA", other.CRL, strings.Repeat("ab", 32), true, "no usable revocation data: " + "%DIR%/bad.crl: revocation: CRL not signed by a given issuer"},
		{"short key", pki.CRL, "abcdef0123", true, "need at least 16"},
		{"key not hex", pki.CRL, "secret-pass-phrase-that-is-long", true, "not hex"},
		{"test anchor in production", pki.CRL, strings.Repeat("ab", 32), false, "JPKI-TEST"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := pki.WriteDir(filepath.Join(dir, "pki")); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(dir, "bad.crl"), string(c.crl))
			writeFile(t, filepath.Join(dir, "key"), c.key)
			cfg := `{"device_id":"k","reader":{"port":"/nonexistent"},
 "trust":{"anchors":["pki/anchors/jpki-test-auth.pem"],"crls":["bad.crl"],"allow_test":` + map[bool]string{true: "true", false: "false"}[c.allowTest] + `},
 "state_dir":"state","mqtt":{"embedded":true,"embedded_listen":"127.0.0.1:0"},"pseudonym_key_file":"key"}`
			p := writeFile(t, filepath.Join(dir, "k.json"), cfg)
			var out, errb bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := run(ctx, []string{"-config", p}, &out, &errb)
			want := strings.ReplaceAll(c.want, "%DIR%", dir)
			if err == nil || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(want)) {
				t.Fatalf("run = %v, want an error about %q", err, want)
			}
			t.Logf("%s: %v", c.name, err)
			if strings.Contains(err.Error(), c.key) || strings.Contains(errb.String(), c.key) {
				t.Fatalf("the pseudonym key leaked into the error or log: %v", err)
			}
		})
	}
}

// TestConfigBrokerRequired: a configuration without a broker is an error
// unless the embedded broker is asked for explicitly; TLS files must be
// complete.
func TestConfigBrokerRequired(t *testing.T) {
	base := `"device_id": "k", "reader": {"port": "/dev/x"}, "trust": {"crls": ["c"]}, "pseudonym_key_file": "key"`
	for _, tc := range []struct{ mqtt, want string }{
		{`{}`, "mqtt.broker must name the backend's broker"},
		{`{"broker": "tcp://b:1883", "embedded": true}`, "mqtt.broker and mqtt.embedded exclude each other"},
		{`{"broker": "ssl://b:8883", "tls": {"ca_file": "ca", "cert_file": "c"}}`, "mqtt.tls.cert_file and mqtt.tls.key_file go together"},
		{`{"broker": "ssl://b:8883", "tls": {"cert_file": "c", "key_file": "k"}}`, "mqtt.tls.ca_file must pin the broker's CA"},
		{`{"embedded": true}`, ""},
	} {
		p := writeFile(t, filepath.Join(t.TempDir(), "k.json"), "{"+base+`, "mqtt": `+tc.mqtt+"}")
		_, err := LoadConfig(p)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("mqtt %s: %v", tc.mqtt, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("mqtt %s: error %v, want %q", tc.mqtt, err, tc.want)
		}
	}
}
